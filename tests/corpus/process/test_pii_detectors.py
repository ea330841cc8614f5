"""PII: the hand-found failures of issue #14, detect-secrets' documented formats, names, addresses,
international phones, and IOCs kept next to them."""

from __future__ import annotations

import pytest

from secfoundry.corpus.process.pii import PIIScrubber
from secfoundry.corpus.process.pii_secrets import detect_secrets_spans, password_is_secret

S = PIIScrubber()


def scrub(t: str) -> str:
    return S.scrub(t)[0]


# --- the hand-found failures ----------------------------------------------------------
def test_bare_aws_secret_access_key():
    assert scrub("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") == "<SECRET>"
    t = "key id AKIAIOSFODNN7EXAMPLE and secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY were leaked"
    assert scrub(t) == "key id <SECRET> and secret <SECRET> were leaked"


def test_password_value_in_config_and_prose():
    assert scrub("password: Hunter2Secret!") == "password: <SECRET>"
    assert scrub("db_password = s3cr3tP4ss!") == "db_password = <SECRET>"
    assert scrub("The password is Hunter2Secret! for the VPN.") == "The password is <SECRET> for the VPN."
    # device defaults and well-known weak passwords are security knowledge
    for kept in ("password: admin", "default credentials admin/admin", "password: P@ssw0rd", "password: changeme"):
        assert scrub(kept) == kept
    assert not password_is_secret("${DB_PASSWORD}") and not password_is_secret("<your-password>")


HR = "Please send your W-2 questions to our HR manager mary.jones@acmecorp.com before Friday."


@pytest.mark.parametrize("lead", ["", "We were phished last week.\n\n", "# We were phished\n\n",
                                  "# Phishing incident: indicators\n\n", "Phished!\n", "## IOCs\n\n"])
def test_hr_address_scrubbed_regardless_of_a_phished_line(lead):
    assert scrub(lead + HR) == lead + HR.replace("mary.jones@acmecorp.com", "<EMAIL>")


def test_ioc_email_lines_still_kept():
    t = "# Phishing incident: indicators\n\n- sender: hr.notice@office365-login.co\n- 203.0.113.7\n"
    assert scrub(t) == t
    t = "| sender | payroll-update@micros0ft-support.com |\n"
    assert scrub("## Indicators\n\n" + t) == "## Indicators\n\n" + t


# --- detect-secrets' documented formats -------------------------------------------------------
TOKENS = {
    "github": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "slack": "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx",
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}


@pytest.mark.parametrize("kind", sorted(TOKENS))
def test_token_formats(kind):
    tok = TOKENS[kind]
    assert scrub(f"export TOKEN_VALUE={tok}\n") == "export TOKEN_VALUE=<SECRET>\n"
    assert scrub(f"leaked {tok}.") == "leaked <SECRET>."


def test_detect_secrets_widens_prefix_findings_and_skips_iocs():
    t = "see ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8 now"
    (s, e, plugin), = detect_secrets_spans(t)
    assert t[s:e].startswith("ghp_") and len(t[s:e]) == 40 and plugin == "GitHubTokenDetector"
    ioc = "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 from 198.51.100.23"
    assert detect_secrets_spans(ioc) == [] and scrub(ioc) == ioc


def test_private_key_block():
    body = "MIIEowIBAAKCAQEA7bq0vQp1XbZq0JYb2M9ErhO2z1N1Zt0mM9kq2hXc0f5l5GJ+3Q4n\n" * 3
    t = f"found:\n-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----\ndone"
    assert scrub(t) == "found:\n<PRIVATE_KEY>\ndone"


# --- names, addresses, phones --------------------------------------------------------------------
def test_names_where_the_text_marks_a_person():
    assert scrub("Dear Jane Whitaker,\nyour account was locked.") == "Dear <NAME>,\nyour account was locked."
    assert scrub("Regards,\nThomas Becker") == "Regards,\n<NAME>"
    assert scrub("Contact: Priya Raman") == "Contact: <NAME>"
    assert scrub("Please contact Olivia Brandt at extension 4.") == "Please contact <NAME> at extension 4."
    assert scrub("Mr. Daniel O'Connor approved it.") == "Mr. <NAME> approved it."
    # products, teams, techniques after the same cues are not people
    for kept in ("Contact: Security Team", "Dear Customer,", "The Call Stack shows ntdll.dll",
                 "Regards,\nThe Security Team", "name: Reg Key Run"):
        assert scrub(kept) == kept


def test_street_addresses():
    assert scrub("Ship it to 1600 Pennsylvania Avenue NW, Washington, DC 20500 today.") == "Ship it to <ADDRESS> today."
    assert scrub("Office: 221B Baker Street, London NW1 6XE") == "Office: <ADDRESS>"
    assert scrub("Send mail to P.O. Box 1234 please") == "Send mail to <ADDRESS> please"
    assert scrub("Hauptstraße 5, 10115 Berlin") == "<ADDRESS>"
    for kept in ("a 3 Way Handshake", "TCP port 443 on 10.0.0.5", "Windows 10 Pro", "step 2 Run the script"):
        assert scrub(kept) == kept


@pytest.mark.parametrize("num", ["+44 20 7946 0958", "+49 (0) 30 1234567", "+33 1 83 41 77 76",
                                 "(0161) 496 0066", "206.269.0743x9150", "1-780-563-6083"])
def test_international_phones(num):
    assert scrub(f"Reach me on {num} after 5pm.") == "Reach me on <PHONE> after 5pm."


def test_iocs_next_to_pii_are_kept():
    t = ("Beacon to hxxp://evil[.]example/gate.php from 203.0.113.7 (AS64500), dropper "
         "d41d8cd98f00b204e9800998ecf8427e, CVE-2024-3400, T1059.001, build 10.0.19045.3693, "
         "fe80::1ff:fe23:4567:890a, C:\\Windows\\Temp\\a.exe")
    assert scrub(t + "; contact Ana Lima at ana.lima@gmail.com") == t + "; contact <NAME> at <EMAIL>"


@pytest.mark.parametrize("kept", [
    "password_hash=HASH(password)",  # code, not a password
    "selection_password:\n        CommandLine|contains|all:",  # a Sigma selection name
    '<!ENTITY user SYSTEM "http://username:password@example.com:8080">',  # placeholder credentials
    'CONTENT="0;url=data:text/html base64,PHNjcmlwdD5hbGVydCgnWFNTJyk8L3NjcmlwdD4K">',  # base64 XSS payload
    "client = MongoClient(uri, tls=True)", "- **Client**: Generally refers to an application",
    "Code: e5 <41> 57 41 56 41 55 41 54 53 b0 01 48 85 f6 0f 84 a4 01 00 00 48 89\nRSP: 0018",  # kernel oops bytes
    "- G0045 menuPass: [menuPass](https://attack.mitre.org/groups/G0045) has used a script",
    "# CVE-2025-4632: Samsung MagicINFO 9 Server Path Traversal Vulnerability",  # not a street
    "During 2011, the vendor invested heavily in new designs.",
])
def test_security_text_false_positives_found_on_the_mirror(kept):
    assert scrub(kept) == kept


def test_phone_after_a_json_escaped_newline():
    assert scrub(r'"contact": "Kevin Cardenas\n612-890-4212x426 (fax)"') == r'"contact": "Kevin Cardenas\n<PHONE> (fax)"'
