"""The documentation stands on its own: docstrings render in mkdocs (no raw Sphinx roles)
and nothing cites a file the repository does not have."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc):`")


def test_no_sphinx_roles_in_docstrings():
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "bayespal").rglob("*.py")
           for i, line in enumerate(p.read_text().splitlines(), 1) if ROLE.search(line)]
    assert bad == [], f"raw roles (mkdocs shows them verbatim): {bad[:5]}"


def test_nothing_cites_a_design_file_outside_the_repository():
    texts = [*ROOT.glob("bayespal/**/*.py"), *ROOT.glob("docs/*.md"), ROOT / "README.md",
             *ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("benchmarks/*.py")]
    assert not (ROOT / "DESIGN.md").exists()
    cited = [str(p.relative_to(ROOT)) for p in texts if "DESIGN.md" in p.read_text()]
    assert cited == []
