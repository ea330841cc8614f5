"""PII scrubber measured on data its rules were not written from, and what it keeps (issue #14, item 4).

1. **Independent PII set**: the 209 sentence templates of Microsoft's presidio-evaluator
   (``presidio_evaluator/data_generator/raw_data/templates.txt``, MIT; install it *without* its
   heavy dependencies: ``pip install --no-deps presidio-evaluator==0.3.2``), filled by Faker
   (seeded, en_US and en_GB) — names, street addresses, emails, phones, credit cards, IBANs,
   SSNs; IPs and URLs in the same templates are indicators and must be *kept*. Emails are
   Faker's free-mail and company addresses (its ``example.*`` addresses are RFC 2606
   documentation domains, which the scrubber keeps on purpose; reported on their own).
2. **Secrets set**: the formats detect-secrets documents (AWS key id + bare secret access key,
   ``password: ...``, GitHub/Slack/Stripe/npm/OpenAI/SendGrid/Twilio tokens, private key blocks,
   JWTs), random values in config, shell, JSON and prose contexts.
3. **IOC keep rate**: Faker/random indicators (IPs, domains, URLs, hashes, defanged forms,
   phishing-sender emails, CVE/ATT&CK ids, paths) in report sentences; and every indicator the
   scrubber protects (IP/URL/domain/hash/id/path matches) in connector documents of the mirror.
4. The old labelled set (the one the rules were written from), for continuity.

Recall: a value counts as found when replacements cover ≥ 50% of its characters. Precision:
replacements that overlap a PII value / all replacements (replacing an IOC, a city, a company
or plain text is a false positive).

    .venv/bin/python bench/pii_bench.py [--per-template 5] [--limit 300] [--ner] [--json /tmp/pii_bench.json]
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import random
import re
import string
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("EMAIL", "PHONE", "CREDIT_CARD", "SSN", "IBAN", "SECRET", "PRIVATE_KEY", "ADDRESS", "NAME")
FIELD_KIND = {
    "person": "NAME", "name": "NAME", "first_name": "NAME", "last_name": "NAME", "name_male": "NAME",
    "name_female": "NAME", "first_name_male": "NAME", "first_name_female": "NAME", "first_name_nonbinary": "NAME",
    "last_name_male": "NAME", "last_name_female": "NAME", "address": "ADDRESS", "email": "EMAIL",
    "phone_number": "PHONE", "credit_card_number": "CREDIT_CARD", "iban": "IBAN", "ssn": "SSN",
    "building_number": "ADDRESS", "street_name": "ADDRESS", "street_address": "ADDRESS",
    "secondary_address": "ADDRESS", "ip_address": "IOC", "url": "IOC",
}


def templates() -> list[str]:
    spec = importlib.util.find_spec("presidio_evaluator")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("presidio-evaluator is not installed: pip install --no-deps presidio-evaluator==0.3.2")
    path = Path(list(spec.submodule_search_locations)[0]) / "data_generator" / "raw_data" / "templates.txt"
    return [t.strip() for t in path.read_text(encoding="utf-8", errors="replace").splitlines() if t.strip()]


def fill(faker, field: str, rng: random.Random) -> str:
    if field == "person":
        return faker.name()
    if field == "email":
        return faker.free_email() if rng.random() < 0.5 else faker.company_email()
    if field == "ip_address":
        return faker.ipv4_public()
    if field in ("nation_woman", "nation_plural", "nationality"):
        return rng.choice(["Canadian", "Brazilians", "Kenyan", "Norwegian"])
    if field == "us_driver_license":
        return faker.bothify("?#######").upper()
    fn = getattr(faker, field, None)
    return str(fn()) if callable(fn) else faker.word()


def independent_set(per_template: int, seed: int = 0):
    from faker import Faker

    rng = random.Random(seed)
    fakers = [Faker("en_US"), Faker("en_GB")]
    for i, f in enumerate(fakers):
        f.seed_instance(seed + i)
    cases = []
    for t in templates():
        for k in range(per_template):
            faker = fakers[k % len(fakers)]
            out, spans, pos = [], [], 0
            for m in re.finditer(r"\{\{(\w+)\}\}", t):
                out.append(t[pos:m.start()])
                start = sum(map(len, out))
                val = fill(faker, m.group(1), rng)
                out.append(val)
                spans.append((start, start + len(val), FIELD_KIND.get(m.group(1), "OTHER:" + m.group(1)), val))
                pos = m.end()
            out.append(t[pos:])
            cases.append(("".join(out), spans))
    return cases


def _rand(rng, chars, n):
    return "".join(rng.choice(chars) for _ in range(n))


def secrets_set(n_each: int, seed: int = 0):
    from faker import Faker

    rng = random.Random(seed)
    fk = Faker("en_US")
    fk.seed_instance(seed)
    up, al, b64 = string.ascii_uppercase + string.digits, string.ascii_letters + string.digits, string.ascii_letters + string.digits + "/+"

    def jwt():
        enc = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).decode().rstrip("=")
        return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc({'sub': str(rng.randint(1, 10**9)), 'name': fk.first_name()})}.{_rand(rng, al + '-_', 43)}"

    def pem():
        body = "\n".join(_rand(rng, b64, 64) for _ in range(6))
        kind = rng.choice(["RSA ", "EC ", "OPENSSH ", ""])
        return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"

    gens = {
        "aws_key_id": lambda: "AKIA" + _rand(rng, up, 16),
        "aws_secret_key": lambda: _rand(rng, b64, 40),
        "password": lambda: fk.password(length=rng.randint(10, 16)),
        "github": lambda: rng.choice(["ghp_", "gho_", "ghs_"]) + _rand(rng, al, 36),
        "github_pat": lambda: "github_pat_" + _rand(rng, al + "_", 82),
        "slack": lambda: rng.choice(["xoxb-", "xoxp-"]) + f"{rng.randint(10**11, 10**12)}-{rng.randint(10**12, 10**13)}-" + _rand(rng, al, 24),
        "stripe": lambda: "sk_live_" + _rand(rng, al, 24),
        "npm": lambda: "npm_" + _rand(rng, al, 36),
        "openai": lambda: "sk-" + _rand(rng, al, 20) + "T3BlbkFJ" + _rand(rng, al, 20),
        "sendgrid": lambda: "SG." + _rand(rng, al + "-_", 22) + "." + _rand(rng, al + "-_", 43),
        "twilio": lambda: "SK" + _rand(rng, "0123456789abcdef", 32),
        "jwt": jwt,
        "private_key": pem,
    }
    ctx = {
        "aws_key_id": ["aws_access_key_id = {v}", "export AWS_ACCESS_KEY_ID={v}", "The leaked key {v} belonged to CI."],
        "aws_secret_key": ["aws_secret_access_key = {v}", "export AWS_SECRET_ACCESS_KEY={v}", "secret: {v}",
                           "They pasted {v} into the ticket.", '{{"SecretAccessKey": "{v}"}}'],
        "password": ["password: {v}", "DB_PASSWORD={v}", '"password": "{v}"', "The password is {v} for the share.",
                     "login with admin / pwd={v}"],
        "_": ["token = {v}", "Authorization: Bearer {v}", '{{"api_key": "{v}"}}', "export API_TOKEN={v}",
              "Found {v} in the repo history.", "curl -H 'X-Auth: {v}' https://api.example.com"],
    }
    cases = []
    for kind, g in gens.items():
        for i in range(n_each):
            v = g()
            if kind == "private_key":
                text = f"Recovered from the host:\n{v}\nEnd of file."
            else:
                tpl = ctx.get(kind, ctx["_"])[i % len(ctx.get(kind, ctx["_"]))]
                text = tpl.format(v=v)
            s = text.index(v)
            cases.append((text, [(s, s + len(v), kind, v)]))
    return cases


def ioc_set(n: int, seed: int = 0):
    from faker import Faker

    rng = random.Random(seed)
    fk = Faker("en_US")
    fk.seed_instance(seed)
    hx = "0123456789abcdef"
    gens = [
        lambda: fk.ipv4_public(), lambda: fk.ipv6(), lambda: fk.domain_name(2), lambda: fk.url() + fk.uri_path(),
        lambda: _rand(rng, hx, 32), lambda: _rand(rng, hx, 40), lambda: _rand(rng, hx, 64),
        lambda: fk.ipv4_public().replace(".", "[.]"), lambda: "hxxps://" + fk.domain_name(2).replace(".", "[.]") + "/login",
        lambda: f"CVE-{rng.randint(1999, 2025)}-{rng.randint(1000, 99999)}", lambda: f"T{rng.randint(1001, 1659)}.{rng.randint(1, 20):03d}",
        lambda: f"C:\\Users\\Public\\{fk.word()}.exe", lambda: f"/tmp/.{fk.word()}/{fk.word()}.sh",
        lambda: fk.user_name() + "@" + fk.domain_word() + "-secure-login.com",
    ]
    tpls = ["The implant beaconed to {v} every 60 seconds.", "IOC: {v}", "- {v}", "| indicator | {v} |",
            "Phishing sender: {v}", "Block {v} at the proxy.", "Observed C2 traffic to {v} over TLS.",
            "The dropper (sha256 of stage 2) matched {v} in our telemetry."]
    cases = []
    for i in range(n):
        g = gens[i % len(gens)]
        v = g()
        t = tpls[rng.randrange(len(tpls))] if "@" not in v else rng.choice(["Phishing sender: {v}", "IOC: {v}", "- sender: {v}"])
        text = t.format(v=v)
        cases.append((text, v))
    return cases


def score(scrubber, cases):
    found = Counter()
    total = Counter()
    tp_reps = fp_reps = 0
    misses = defaultdict(list)
    fps = []
    for text, spans in cases:
        reps = scrubber.find(text)
        covered = [0] * len(text)
        for r in reps:
            for i in range(r.start, r.end):
                covered[i] = 1
        for s, e, kind, val in spans:
            if kind.startswith("OTHER") or kind == "IOC":
                continue
            total[kind] += 1
            if sum(covered[s:e]) >= 0.5 * (e - s):
                found[kind] += 1
            elif len(misses[kind]) < 8:
                misses[kind].append(text if len(text) < 200 else val)
        targeted = [(s, e) for s, e, k, _ in spans if not (k.startswith("OTHER") or k == "IOC")]
        for r in reps:
            if any(r.start < e and s < r.end for s, e in targeted):
                tp_reps += 1
            else:
                fp_reps += 1
                if len(fps) < 15:
                    fps.append(f"<{r.kind}> {r.text!r} in {text[:160]!r}")
    iocs_total = sum(1 for _, spans in cases for s, e, k, _ in spans if k == "IOC")
    iocs_kept = 0
    for text, spans in cases:
        out = scrubber.scrub(text)[0]
        iocs_kept += sum(1 for s, e, k, v in spans if k == "IOC" and v in out)
    return {"recall": {k: (found[k], total[k], found[k] / total[k] if total[k] else None) for k in sorted(total)},
            "precision": tp_reps / (tp_reps + fp_reps) if tp_reps + fp_reps else None, "replacements": tp_reps + fp_reps,
            "false_positives": fp_reps, "fp_examples": fps, "misses": dict(misses),
            "iocs_in_templates": (iocs_kept, iocs_total)}


def labelled(scrubber):
    cases = [json.loads(x) for x in (ROOT / "tests/corpus/process/data/pii_labelled.jsonl").read_text().splitlines()]
    tp = fp = fn = 0
    for c in cases:
        got = Counter(r.kind for r in scrubber.find(c["text"]))
        exp = Counter({k: c["expected"].count(f"<{k}>") for k in KINDS})
        tp += sum((got & exp).values())
        fp += sum((got - exp).values())
        fn += sum((exp - got).values())
    return {"cases": len(cases), "exact": sum(scrubber.scrub(c["text"])[0] == c["expected"] for c in cases),
            "tp": tp, "fp": fp, "fn": fn}


def mirror_iocs(scrubber, mirror: Path, limit: int, show: int):
    from secfoundry.corpus.process.audit import source_documents
    from secfoundry.corpus.process.pii import PROTECT_RE

    counts: dict[str, Counter] = defaultdict(Counter)
    n_docs: Counter = Counter()
    iocs = Counter()
    kept = Counter()
    chars = 0
    shown, errors = [], []
    secs = 0.0
    for doc in source_documents(mirror, None, limit, errors):
        n_docs[doc.source] += 1
        chars += len(doc.text)
        t = time.perf_counter()
        reps = scrubber.find(doc.text)
        out = scrubber.scrub(doc.text)[0]
        secs += time.perf_counter() - t
        for r in reps:
            counts[doc.source][r.kind] += 1
            if len(shown) < show:
                ctx = doc.text[max(0, r.start - 50): r.end + 30].replace("\n", " ")
                shown.append(f"{doc.source} {doc.id} <{r.kind}> {r.text!r}: …{ctx}…")
        found = Counter(m.group(0) for m in PROTECT_RE.finditer(doc.text))
        for v, c in found.items():
            iocs[doc.source] += c
            kept[doc.source] += min(c, out.count(v))
    return {"docs": dict(n_docs), "chars": chars, "seconds": secs, "errors": errors,
            "replacements": {s: dict(c) for s, c in counts.items()}, "iocs": dict(iocs), "iocs_kept": dict(kept),
            "examples": shown}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-template", type=int, default=5)
    ap.add_argument("--secrets-each", type=int, default=30)
    ap.add_argument("--iocs", type=int, default=700)
    ap.add_argument("--limit", type=int, default=300, help="connector documents per source for the mirror pass")
    ap.add_argument("--show", type=int, default=40)
    ap.add_argument("--ner", action="store_true", help="also score with Presidio + spaCy PERSON spans")
    ap.add_argument("--mirror", default=str(ROOT.parent / "shared" / "data" / "mirror"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from secfoundry.corpus.process.pii import PIIConfig, PIIScrubber

    res: dict = {}
    configs = {"rules": PIIScrubber()}
    if args.ner:
        configs["rules+ner"] = PIIScrubber(PIIConfig(ner=True))
    cases = independent_set(args.per_template)
    sec = secrets_set(args.secrets_each)
    for name, s in configs.items():
        t = time.perf_counter()
        r = score(s, cases)
        r["seconds"] = time.perf_counter() - t
        res[f"independent[{name}]"] = r
        print(f"\n== independent set ({len(cases)} sentences from presidio-evaluator templates + Faker), {name} ==")
        for k, (f, n, rc) in r["recall"].items():
            print(f"  {k:12s} recall {f}/{n} = {rc:.3f}")
        print(f"  precision {r['precision']:.3f} ({r['false_positives']} false of {r['replacements']}); "
              f"IPs/URLs in the templates kept {r['iocs_in_templates'][0]}/{r['iocs_in_templates'][1]}; {r['seconds']:.1f}s")
        for k, m in r["misses"].items():
            print(f"  missed {k}: {m[:4]}")
        print("  false positives:", r["fp_examples"][:8])
    s = configs["rules"]
    r = score(s, sec)
    res["secrets"] = r
    print(f"\n== secrets set ({len(sec)} values in detect-secrets' documented formats) ==")
    for k, (f, n, rc) in r["recall"].items():
        print(f"  {k:16s} recall {f}/{n} = {rc:.3f}")
    print(f"  precision {r['precision']:.3f}; misses: {dict((k, v[:2]) for k, v in r['misses'].items())}")
    # documentation-domain emails (kept by policy)
    from faker import Faker

    fk = Faker("en_US")
    fk.seed_instance(3)
    ex = [f"Write to {e} about the refund." for e in (fk.email(domain=d) for d in ["example.com", "example.org"] * 25)]
    res["example_domain_emails_kept"] = sum(s.scrub(t)[0] == t for t in ex) / len(ex)
    iocs = ioc_set(args.iocs)
    kept = sum(v in s.scrub(t)[0] for t, v in iocs)
    res["ioc_set"] = {"kept": kept, "total": len(iocs), "lost": [(t, s.scrub(t)[0]) for t, v in iocs if v not in s.scrub(t)[0]][:10]}
    print(f"\n== IOC set: {kept}/{len(iocs)} = {kept / len(iocs):.4f} kept; lost: {res['ioc_set']['lost'][:5]}")
    res["labelled"] = labelled(s)
    print(f"\n== labelled set (rules written from it): {res['labelled']}")
    m = mirror_iocs(s, Path(args.mirror), args.limit, args.show)
    res["mirror"] = m
    ti, tk = sum(m["iocs"].values()), sum(m["iocs_kept"].values())
    print(f"\n== mirror: {sum(m['docs'].values())} connector documents, {m['chars'] / 1e6:.1f} M chars, scrub "
          f"{m['seconds']:.1f}s ({m['chars'] / 1e6 / max(m['seconds'], 1e-9):.2f} M chars/s); indicators kept {tk}/{ti} = "
          f"{tk / max(ti, 1):.5f}; errors: {m['errors']}")
    print("| source | docs | IOCs kept | " + " | ".join(KINDS) + " |\n|---|---:|---:|" + "---:|" * len(KINDS))
    for src in sorted(m["docs"]):
        c = m["replacements"].get(src, {})
        print(f"| {src} | {m['docs'][src]} | {m['iocs_kept'].get(src, 0)}/{m['iocs'].get(src, 0)} | "
              + " | ".join(str(c.get(k, 0)) for k in KINDS) + " |")
    print("\nreplacements with context:")
    for line in m["examples"]:
        print(" -", line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
