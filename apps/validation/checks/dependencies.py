"""Parse the requirements with `packaging` (PEP 508): invalid lines fail, unpinned ones warn."""

from packaging.requirements import InvalidRequirement, Requirement

from ..models import Verdict
from .base import CheckContext, Outcome

name = "dependencies"
version = "1.0"


def run(context: CheckContext) -> Outcome:
    text = context.version.requirements
    if not text.strip():
        return Outcome(Verdict.SKIP, "no requirements recorded", {})
    invalid, unpinned, parsed = [], [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            unpinned.append({"line": number, "text": line, "problem": "pip option; not checked"})
            continue
        line = line.split(" \\", 1)[0].split(" --hash", 1)[0].strip()
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            invalid.append({"line": number, "text": raw.strip(), "problem": str(exc)})
            continue
        parsed.append(str(requirement))
        pinned = requirement.url or any(spec.operator in ("==", "===") and "*" not in spec.version for spec in requirement.specifier)
        if not pinned:
            unpinned.append({"line": number, "text": line, "problem": "not pinned to one version"})
    details = {"requirements": parsed, "invalid": invalid, "unpinned": unpinned}
    if invalid:
        return Outcome(Verdict.FAIL, f"{len(invalid)} invalid requirement line(s), first on line {invalid[0]['line']}: {invalid[0]['text'][:100]}", details)
    if unpinned:
        return Outcome(Verdict.WARN, f"{len(unpinned)} of {len(parsed) + len([u for u in unpinned if 'option' in u['problem']])} requirement(s) are not pinned", details)
    return Outcome(Verdict.PASS, f"{len(parsed)} requirement(s), all pinned", details)
