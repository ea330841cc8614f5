"""The shipped Go semgrep rules on small programs written for these tests: one semgrep run over a
folder of positive and negative cases (tainted XPath/LDAP/divisor/e-mail, regexp checks, URL
scheme deny-lists, redirect checks, constant OAuth2 state) and the engine's path mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from secfoundry.apps.review.code_engines import run_semgrep
from secfoundry.apps.review.files import walk

from .conftest import require_engine

HANDLER = '''package main

import (
\t"net/http"
\t"net/smtp"
\t"strconv"

\t"github.com/antchfx/xpath"
\tldap "github.com/go-ldap/ldap/v3"
\t"golang.org/x/oauth2"
)

func lookup(w http.ResponseWriter, r *http.Request) {
\tname := r.URL.Query().Get("name")
\t_, _ = xpath.Compile("//user[name='" + name + "']")
\tldap.NewSearchRequest("dc=example,dc=org", 2, 0, 0, 0, false, "(uid="+name+")", []string{"cn"}, nil)
\tn, _ := strconv.Atoi(r.FormValue("n"))
\tw.Write([]byte(strconv.Itoa(100 / n)))
\tif n != 0 {
\t\t_ = 100 / n
\t}
\tsmtp.SendMail("mx:25", nil, "a@example.org", []string{"b@example.org"}, []byte("reset: "+r.Host))
}

func login(c *oauth2.Config) string {
\treturn c.AuthCodeURL("state")
}

func cookies(w http.ResponseWriter) {
\tc := http.Cookie{Name: "session", Value: "x"}
\thttp.SetCookie(w, &c)
\td := http.Cookie{Name: "session", Value: "x", HttpOnly: true}
\thttp.SetCookie(w, &d)
}
'''
# line numbers of the expected findings in HANDLER
EXPECT = {("go-tainted-xpath", 15), ("go-tainted-ldap", 16), ("go-divide-by-untrusted", 18),
          ("go-tainted-smtp", 22), ("go-oauth2-constant-state", 26), ("go-cookie-no-httponly", 31)}
NOT_EXPECT = {("go-divide-by-untrusted", 20), ("go-cookie-no-httponly", 33)}

CHECKS = '''package main

import (
\t"net/url"
\t"regexp"
)

func hostOK(h string) bool {
\tok, _ := regexp.MatchString(`^(www\\.)?example.com$`, h)
\treturn ok
}

func hostOK2(h string) bool {
\tok, _ := regexp.MatchString(`^(www\\.)?example\\.com$`, h)
\treturn ok
}

var word = regexp.MustCompile("\\bfoo")
var word2 = regexp.MustCompile(`\\bfoo`)

var site = regexp.MustCompile(`https?://www\\.example\\.com/`)
var alt = regexp.MustCompile(`^a|b`)

func unsafeURL(s string) bool {
\tu, _ := url.Parse(s)
\tif u.Scheme == "javascript" {
\t\treturn true
\t}
\treturn false
}

func safeURL(s string) bool {
\tu, _ := url.Parse(s)
\tif u.Scheme == "javascript" || u.Scheme == "vbscript" || u.Scheme == "data" {
\t\treturn true
\t}
\treturn false
}

func local(redir string) string {
\tif len(redir) > 0 && redir[0] == '/' {
\t\treturn redir
\t}
\treturn "/"
}

func local2(redir string) string {
\tif len(redir) > 1 && redir[0] == '/' && redir[1] != '/' && redir[1] != '\\\\' {
\t\treturn redir
\t}
\treturn "/"
}
'''
CHECKS_EXPECT = {("go-regexp-unescaped-host-dot", 9), ("go-regexp-suspicious-escape", 18),
                 ("go-regexp-url-unanchored", 21), ("go-regexp-alternation-anchor", 22),
                 ("go-incomplete-url-scheme-check", 26), ("go-redirect-check-single-slash", 41)}
CHECKS_NOT = {("go-regexp-unescaped-host-dot", 14), ("go-regexp-suspicious-escape", 19),
              ("go-incomplete-url-scheme-check", 34), ("go-redirect-check-single-slash", 48)}


LOGS = '''package main

import (
\t"log"
\t"net/http"
)

func logs(r *http.Request, password string, hashedPassword string) {
\tlog.Println("login", password)
\tlog.Println(r.Header.Get("Authorization"))
\tlog.Println(hashedPassword, len(password))
}
'''


@pytest.fixture(scope="module")
def go_findings(tmp_path_factory):
    require_engine("semgrep")
    root = tmp_path_factory.mktemp("gorules")
    (root / "a").mkdir()
    (root / "b" / "c").mkdir(parents=True)
    (root / "a" / "handler.go").write_text(HANDLER)
    (root / "b" / "c" / "checks.go").write_text(CHECKS)
    (root / "b" / "logs.go").write_text(LOGS)
    w = walk([str(root / "a"), str(root / "b")], "code")
    found, run, skipped = run_semgrep(w.targets, jobs=1)
    assert run.status == "ok", run.note
    assert run.note == "semgrep-core direct", run.note  # not the `semgrep scan` fallback
    return {(f.rule_id, Path(f.location.file).name, f.location.start_line): f for f in found}


def _hits(found, name):
    return {(r, line) for (r, n, line) in found if n == name}


def test_taint_rules(go_findings) -> None:
    hits = _hits(go_findings, "handler.go")
    assert EXPECT <= hits, EXPECT - hits
    assert not (NOT_EXPECT & hits)
    f = go_findings[("go-tainted-xpath", "handler.go", 15)]
    assert f.cwe == ["CWE-643"] and f.engine == "semgrep" and "xpath.Compile" in f.location.snippet


def test_validation_checks(go_findings) -> None:
    hits = _hits(go_findings, "checks.go")
    assert CHECKS_EXPECT <= hits, CHECKS_EXPECT - hits
    assert not (CHECKS_NOT & hits), CHECKS_NOT & hits


def test_cleartext_logging(go_findings) -> None:
    hits = _hits(go_findings, "logs.go")
    assert {("go-cleartext-logging", 9), ("go-cleartext-logging", 10)} <= hits
    assert ("go-cleartext-logging", 11) not in hits


def test_paths_map_back_from_common_root(go_findings) -> None:
    files = {f.location.file for f in go_findings.values()}
    # targets given as two folders: each finding keeps the path as walked, not semgrep's relative one
    assert all(Path(p).name in ("handler.go", "checks.go", "logs.go") for p in files)
    assert all(f.location.snippet for f in go_findings.values())


def test_engine_is_semgrep_core_with_resolved_anchors(go_findings, monkeypatch, tmp_path) -> None:
    from secfoundry.apps.review import engines, semgrep_core
    from secfoundry.apps.review.code_engines import semgrep_rules_dir

    doc = semgrep_core.rules_document(semgrep_rules_dir())
    sql = next(r for r in doc["rules"] if r["id"] == "go-tainted-sql")
    cmd = next(r for r in doc["rules"] if r["id"] == "go-tainted-command")
    assert isinstance(cmd["pattern-sources"], list) and cmd["pattern-sources"] == sql["pattern-sources"]
    t = semgrep_core.targets_document({"a/x.go": "go", "b.py": "python", "c.tf": "terraform"})
    assert t[0] == "Targets" and [x[1]["analyzer"] for x in t[1]] == ["go", "python"]
    # a missing or broken engine binary is reported, so the caller can fall back to `semgrep scan`
    monkeypatch.setenv("SECFOUNDRY_SEMGREP_CORE", str(tmp_path / "nope"))
    with pytest.raises(semgrep_core.CoreUnavailable):
        semgrep_core.run_core(engines.find("semgrep"), semgrep_rules_dir(), {"x.go": "go"}, tmp_path, jobs=1, timeout=60)


def test_fallback_to_semgrep_scan_gives_the_same_findings(go_findings, monkeypatch, tmp_path) -> None:
    (tmp_path / "handler.go").write_text(HANDLER)
    monkeypatch.setenv("SECFOUNDRY_SEMGREP_CORE", str(tmp_path / "missing-semgrep-core"))
    found, run, _ = run_semgrep(walk([str(tmp_path)], "code").targets, jobs=1)
    assert run.status == "ok" and "semgrep scan" in run.note, run.note
    cli = {(f.rule_id, f.location.start_line, f.message) for f in found}
    core = {(f.rule_id, line, f.message) for (r, n, line), f in go_findings.items() if n == "handler.go"}
    assert cli == core
