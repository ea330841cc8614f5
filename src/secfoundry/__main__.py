from secfoundry.cli import app

app()
