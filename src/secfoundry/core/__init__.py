"""Shared foundations every stage builds on; imports nothing from the stages.

Layout (one concept per module):

- ``documents``  the corpus ``Document`` (what connectors render, what corpus stages pass on)
- ``records``    typed knowledge-base records (``Record``, ``Relation``, record-type names)
- ``errors``     ``InputError`` (names file/row/field) and ``Quarantine`` (bad entries kept aside)
- ``paths``      state home, source mirror, benchmark data dir: one resolution rule
- ``hashing``    sha256 of files and bytes
- ``download``   the pinned, conditional HTTP downloader (retries, ETag, sha256 pins)
- ``html``       HTML -> text/Markdown
- ``report``     the one report shell (jinja2 templates in ``core/templates/``)

Arrows: ``core`` <- ``sources`` <- {``kb``, ``corpus``}; ``kb`` and ``corpus`` never import
each other.
"""
