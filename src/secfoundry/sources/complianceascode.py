"""ComplianceAsCode content: ``rule.yml`` hardening rules and CIS control files.

A rule lives in ``<...>/<rule_id>/rule.yml``: title, description, rationale, severity,
``identifiers`` (CCE per product), ``references`` (NIST 800-53, CIS, DISA STIG/SRG, PCI DSS,
...). Upstream writes these files as Jinja templates with its own delimiters (``{{{ expr }}}``,
``{{% stmt %}}``, ``{{# comment #}}``) that its build renders per product. We render them
product-neutrally in a sandbox: product conditions are false, known helper macros
(``xccdf_value``, ``weblink``, ``describe_*`` ...) produce short factual text, unknown names
render as their own name. A template that still cannot be rendered falls back to dropping the
Jinja markup, so a rule is only lost when its YAML itself is broken.

Records: ``COMPLIANCE_RULE`` ``cac:<rule_id>`` with ``references-control`` relations to NIST
SP 800-53 controls (``AC-2``, ``IA-5(1)``: item letters dropped), CCE ids as aliases, CIS/STIG
references as attributes, and ``implements`` relations to CIS benchmark controls. The control
files (``controls/cis_*.yml``) give ``benchmark-control`` records (a type added here)
``cis_debian12:1.1.1.1`` with their levels, status and ``implemented-by`` relations.
"""

from __future__ import annotations

import ast
import functools
import re
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from secfoundry.sources._archives import as_list, iter_tar, jsonable, load_yaml, report, set_stats
from secfoundry.sources.base import document_of, GitTarballSource, Quarantine, Remote, Snapshot, decode_text, register
from secfoundry.core.documents import Document
from secfoundry.core.errors import InputError
from secfoundry.core.html import fragment_to_markdown
from secfoundry.core.records import COMPLIANCE_RULE, Record, Relation

BENCHMARK_CONTROL = "benchmark-control"  # a CIS (or other) benchmark item mapped to rules

CAC_TARBALL = Remote("https://github.com/ComplianceAsCode/content/archive/refs/heads/master.tar.gz",
                     "complianceascode-content-master.tar.gz")
_RAW = "https://raw.githubusercontent.com/ComplianceAsCode/content/master/controls/"
CONTROL_FILES = (Remote(_RAW + "cis_debian12.yml"), Remote(_RAW + "cis_ubuntu2404.yml"))
_RULE_MEMBER = re.compile(r"(^|/)([^/]+)/rule\.yml$")
_NIST_REF = re.compile(r"^([A-Z]{2})-(\d+)((?:\([^)]*\))*)$")
_REPO = "https://github.com/ComplianceAsCode/content/tree/master/"


# -- Jinja, product-neutral -------------------------------------------------------------------

_DEFAULT_VARS = {
    "full_name": "the operating system",
    "product": "",
    "login_defs_path": "/etc/login.defs",
    "pwquality_path": "/etc/security/pwquality.conf",
    "grub2_boot_path": "/boot/grub2",
    "auid": "1000",
    "uid_min": "1000",
}


_STRUCTURAL = ("complete_", "ocil", "warning_", "rule_notapplicable", "platform_")


def _describe(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Short factual text for upstream's ``describe_*``/``weblink`` helper macros."""
    vals = [str(a) for a in args] + [str(v) for v in kwargs.values()]
    k = {**{f"_{i}": str(a) for i, a in enumerate(args)}, **{key: str(v) for key, v in kwargs.items()}}

    def arg(*names: str) -> str:
        for n in names:
            if k.get(n):
                return k[n]
        return vals[0] if vals else ""

    if name == "xccdf_value":
        return f"${arg('_0', 'varname')}"
    if name == "weblink":
        link = arg("link", "_0")
        text = k.get("text") or k.get("_1") or link
        return f'<a href="{link}">{text}</a>'
    if name == "describe_package_install":
        return f"The <tt>{arg('package', '_0')}</tt> package should be installed."
    if name == "describe_package_remove":
        return f"The <tt>{arg('package', '_0')}</tt> package should be removed."
    if name == "describe_service_disable":
        return f"The <tt>{arg('service', '_0')}</tt> service should be disabled."
    if name == "describe_service_enable":
        return f"The <tt>{arg('service', '_0')}</tt> service should be enabled."
    if name == "describe_file_owner":
        return f"The file <tt>{arg('file', '_0')}</tt> should be owned by <tt>{k.get('owner', '')}</tt>."
    if name == "describe_file_group_owner":
        return f"The file <tt>{arg('file', '_0')}</tt> should be group-owned by <tt>{k.get('group', '')}</tt>."
    if name == "describe_file_permissions":
        return f"The file <tt>{arg('file', '_0')}</tt> should have mode <tt>{k.get('perms', '')}</tt>."
    if name == "describe_sysctl_option_value":
        return f"The kernel parameter <tt>{arg('sysctl', '_0')}</tt> should be set to <tt>{k.get('value', '')}</tt>."
    if name == "describe_sebool_disable":
        return f"The SELinux boolean <tt>{arg('sebool', '_0')}</tt> should be disabled."
    if name == "describe_sebool_enable":
        return f"The SELinux boolean <tt>{arg('sebool', '_0')}</tt> should be enabled."
    if name == "describe_mount":
        return f"The <tt>{arg('option', '_0')}</tt> mount option should be set on <tt>{k.get('part', '')}</tt>."
    if name.startswith(_STRUCTURAL):
        return ""  # these emit whole YAML keys/list items (ocil, warnings, platforms) records do not use
    # Unknown helper: its name and arguments, kept free of YAML indicators (": ", " #").
    words = name.replace("_", " ").strip()
    args_text = re.sub(r":\s|\s#|[{}\[\]]", " ", ", ".join(vals)).strip()
    return f"{words} ({args_text})" if args_text else words


_env: Any = None


def _environment() -> Any:
    global _env
    if _env is None:
        from jinja2 import ChainableUndefined
        from jinja2.sandbox import SandboxedEnvironment

        class Lenient(ChainableUndefined):
            """Unknown names render as themselves; unknown macros describe their arguments."""

            def __str__(self) -> str:
                return self._undefined_name or ""

            def __call__(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
                return _describe(self._undefined_name or "", args, kwargs)

        _env = SandboxedEnvironment(
            block_start_string="{{%", block_end_string="%}}",
            variable_start_string="{{{", variable_end_string="}}}",
            comment_start_string="{{#", comment_end_string="#}}",
            undefined=Lenient, autoescape=False, keep_trailing_newline=True,
        )
    return _env


_JINJA_STMT = re.compile(r"^[ \t]*\{\{%.*?%\}\}[ \t]*\n?", re.M | re.S)
_JINJA_ANY = re.compile(r"\{\{%.*?%\}\}|\{\{#.*?#\}\}", re.S)
_JINJA_EXPR = re.compile(r"\{\{\{-?\s*(.*?)\s*-?\}\}\}", re.S)


def strip_template(text: str) -> str:
    """Drop Jinja statements/comments; an expression becomes its bare macro or variable name."""
    text = _JINJA_STMT.sub("", text)
    text = _JINJA_ANY.sub("", text)
    return _JINJA_EXPR.sub(lambda m: re.split(r"[(|\s]", m.group(1).strip(), maxsplit=1)[0], text)


def _eval_node(node: ast.AST, source: str) -> str:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # ``x | filter(...)``
        return _eval_node(node.left, source)
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.Name):
        return str(_DEFAULT_VARS.get(node.id, node.id))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args = [a.value if isinstance(a, ast.Constant) else _eval_node(a, source) for a in node.args]
        kwargs = {k.arg: (k.value.value if isinstance(k.value, ast.Constant) else _eval_node(k.value, source))
                  for k in node.keywords if k.arg}
        return _describe(node.func.id, tuple(args), kwargs)
    return re.split(r"[(|\s]", source.strip(), maxsplit=1)[0]


def _eval_expression(m: re.Match[str]) -> str:
    """One ``{{{ expr }}}``: Jinja expressions here are Python-shaped calls with literal arguments,
    so ``ast.parse`` reads them (nothing is executed)."""
    expr = m.group(1).strip()
    try:
        return _eval_node(ast.parse(expr, mode="eval").body, expr)
    except SyntaxError:
        return re.split(r"[(|\s]", expr, maxsplit=1)[0]


@functools.lru_cache(maxsize=4096)
def render_template(text: str) -> str:
    """Render upstream's Jinja markup product-neutrally; strip it when it cannot be rendered.

    Files with only ``{{{ expr }}}`` (most of them) take a fast path that evaluates each
    expression directly; files with ``{{% if/set %}}`` statements go through a sandboxed Jinja
    (compiling a template costs milliseconds, so the result is cached for ``documents()``).
    """
    if "{{" not in text:
        return text
    if "{{%" not in text and "{{#" not in text:
        return _JINJA_EXPR.sub(_eval_expression, text)
    try:
        with warnings.catch_warnings():  # upstream string literals hold regexes such as '\s'
            warnings.simplefilter("ignore", DeprecationWarning)
            return _environment().from_string(text).render(**_DEFAULT_VARS)
    except Exception:  # jinja2 raises many types (syntax, sandbox, runtime): fall back to stripping
        return strip_template(text)


def load_rule_yaml(raw: str, file: str, entry: str) -> Any:
    """Rendered YAML; when rendering produced text YAML rejects, the stripped template."""
    try:
        return load_yaml(render_template(raw), file, entry)
    except InputError as first:
        if "{{" not in raw:
            raise
        try:
            return load_yaml(strip_template(raw), file, entry)
        except InputError:
            raise first from None


def nist_controls(refs: Any) -> list[str]:
    """``IA-5(f),IA-5(1)(a),CM-6(a)`` -> ``IA-5, IA-5(1), CM-6`` (enhancement kept, items dropped)."""
    out: list[str] = []
    for ref in re.split(r"[,\s]+", str(refs or "")):
        m = _NIST_REF.match(ref.strip().upper())
        if not m:
            continue
        fam, num, tail = m.groups()
        enh = next((int(x) for x in re.findall(r"\((\d+)\)", tail)), None)
        cid = f"{fam}-{int(num)}" + (f"({enh})" if enh is not None else "")
        if cid not in out:
            out.append(cid)
    return out


def rule_record(data: Any, *, rule_id: str, path: str, file: str, version: str) -> Record:
    if not isinstance(data, dict):
        raise InputError("rule.yml is not a YAML mapping", file=file, row=path)
    title = str(data.get("title") or "").strip()
    if not title:
        raise InputError("rule has no title", file=file, row=path, field="title")
    refs = data.get("references") if isinstance(data.get("references"), dict) else {}
    idents = data.get("identifiers") if isinstance(data.get("identifiers"), dict) else {}
    nist: list[str] = []
    cis: dict[str, str] = {}
    stig: dict[str, str] = {}
    other: dict[str, str] = {}
    for key, val in refs.items():
        base, _, product = str(key).partition("@")
        if base == "nist":
            nist += [c for c in nist_controls(val) if c not in nist]
        elif base == "cis":
            cis[product or "generic"] = str(val)
        elif base in ("stigid", "srg", "disa"):
            stig[str(key)] = str(val)
        else:
            other[str(key)] = str(val)
    cces = list(dict.fromkeys(str(v) for k, v in idents.items() if str(k).startswith("cce")))
    rels = [Relation("references-control", c) for c in nist]
    return Record(
        id=f"cac:{rule_id}",
        type=COMPLIANCE_RULE,
        name=title,
        description=fragment_to_markdown(str(data.get("description") or "")),
        source="complianceascode",
        url=_REPO + path.rsplit("/", 1)[0],
        version=version,
        license="BSD-3-Clause",
        aliases=cces,
        relations=rels,
        attributes=jsonable({
            "rule_id": rule_id,
            "rationale": fragment_to_markdown(str(data.get("rationale") or "")),
            "severity": str(data.get("severity") or "unknown"),
            "nist": nist,
            "cis": cis,
            "stig": stig,
            "references": other,
            "identifiers": {str(k): str(v) for k, v in idents.items()},
            "platform": data.get("platform") or as_list(data.get("platforms")),
            "path": path,
            "cis_controls": [],
        }),
    )


def control_file_records(data: Any, *, file: str, version: str) -> tuple[list[Record], dict[str, list[dict[str, Any]]]]:
    """Benchmark-control records of one ``controls/*.yml`` file and rule -> controls links."""
    if not isinstance(data, dict) or not isinstance(data.get("controls"), list):
        raise InputError("a control file needs a 'controls' list", file=file, field="controls")
    policy = str(data.get("id") or Path(file).stem)
    pol_version = str(data.get("version") or "")
    recs: list[Record] = []
    by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def walk(controls: list[Any], parent: str | None) -> None:
        for c in controls:
            if not isinstance(c, dict) or not c.get("id"):
                continue
            cid = f"{policy}:{c['id']}"
            rules = [str(r).split("=", 1)[0] for r in as_list(c.get("rules")) if "=" not in str(r)]
            variables = [str(r) for r in as_list(c.get("rules")) if "=" in str(r)]
            rels = [Relation("implemented-by", f"cac:{r}") for r in rules]
            rels += [Relation("related-rule", f"cac:{r}") for r in as_list(c.get("related_rules"))]
            if parent:
                rels.append(Relation("child-of", parent))
            recs.append(Record(
                id=cid,
                type=BENCHMARK_CONTROL,
                name=str(c.get("title") or c["id"]),
                description=str(c.get("notes") or "").strip(),
                source="complianceascode",
                url=str(data.get("source") or ""),
                version=f"{data.get('title', policy)} {pol_version}".strip(),
                license="BSD-3-Clause",
                relations=rels,
                attributes={"policy": policy, "policy_title": str(data.get("title") or ""),
                            "benchmark_version": pol_version, "control": str(c["id"]),
                            "levels": [str(x) for x in as_list(c.get("levels"))],
                            "status": str(c.get("status") or ""), "variables": variables,
                            "product": str(data.get("product") or "")},
            ))
            for r in rules:
                by_rule[r].append({"policy": policy, "control": str(c["id"]), "title": str(c.get("title") or ""),
                                   "levels": [str(x) for x in as_list(c.get("levels"))]})
            walk(as_list(c.get("controls")), cid)

    walk(data["controls"], None)
    return recs, by_rule


@register
class ComplianceAsCodeSource(GitTarballSource):
    name = "complianceascode"
    title = "ComplianceAsCode content (rules and CIS control mappings)"
    license = "BSD-3-Clause"
    homepage = "https://github.com/ComplianceAsCode/content"

    patterns = ("*.tar.gz", "*.tgz", "controls/*.yml")
    tarball, raw_files = CAC_TARBALL, CONTROL_FILES

    def parse(self, snapshot: Snapshot, q: Quarantine) -> Iterator[Record]:
        controls: list[Record] = []
        by_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for path in snapshot.files:
            if path.suffix in (".yml", ".yaml"):
                try:
                    recs, links = control_file_records(load_yaml(path.read_bytes(), str(path)), file=str(path),
                                                       version=snapshot.version)
                except InputError as e:
                    report(q, self.name, path, None, e)
                    continue
                controls += recs
                for r, items in links.items():
                    by_rule[r] += items
        seen: set[str] = set()
        for path in snapshot.files:
            if not path.name.endswith((".tar.gz", ".tgz")):
                continue
            for member, data in iter_tar(path, lambda n: bool(_RULE_MEMBER.search(n)), source=self.name,
                                         quarantine=q):
                rule_id = _RULE_MEMBER.search(member).group(2)  # type: ignore[union-attr]
                rel_path = re.sub(r"^[^/]*content[^/]*/", "", member)
                try:
                    parsed = load_rule_yaml(decode_text(data, str(path), member), str(path), member)
                    rec = rule_record(parsed, rule_id=rule_id, path=rel_path,
                                      file=str(path), version=snapshot.version)
                except InputError as e:
                    report(q, self.name, path, member, e)
                    continue
                if rec.id in seen:  # upstream test fixtures reuse rule names; the first one wins
                    rec.id = f"cac:{rel_path.rsplit('/', 1)[0]}"
                seen.add(rec.id)
                for link in by_rule.get(rule_id, []):
                    rec.attributes["cis_controls"].append(link)
                    rec.relations.append(Relation("implements", f"{link['policy']}:{link['control']}"))
                yield rec
        set_stats(snapshot, rules=len(seen), benchmark_controls=len(controls))
        yield from controls

    def documents(self, snapshot: Snapshot, quarantine: Quarantine | None = None) -> Iterator[Document]:
        for rec in self.records(snapshot, quarantine):
            if rec.type == COMPLIANCE_RULE:
                yield rule_document(rec)


def rule_document(rec: Record) -> Document:
    a = rec.attributes
    lines = [f"# {rec.name}", "", f"- **Rule**: `{a['rule_id']}`", f"- **Severity**: {a['severity']}"]
    if a["nist"]:
        lines.append(f"- **NIST SP 800-53**: {', '.join(a['nist'])}")
    for prod, ref in a["cis"].items():
        lines.append(f"- **CIS ({prod})**: {ref}")
    for c in a["cis_controls"]:
        lines.append(f"- **{c['policy']}** {c['control']}: {c['title']}")
    for key, ref in a["stig"].items():
        lines.append(f"- **{key}**: {ref}")
    if rec.aliases:
        lines.append(f"- **CCE**: {', '.join(rec.aliases)}")
    lines += ["", "## Description", "", rec.description, ""]
    if a["rationale"]:
        lines += ["## Rationale", "", a["rationale"], ""]
    return document_of(rec, "\n".join(lines).strip() + "\n", id=rec.id, source="complianceascode",
                       severity=a["severity"])
