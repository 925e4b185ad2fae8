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


def _returns_sections():
    """(where, first line, described) of every numpy-style Returns/Yields section."""
    import ast

    for path in (ROOT / "bayespal").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            lines = (ast.get_docstring(node, clean=True) or "").splitlines()
            for i, line in enumerate(lines[:-2]):
                if line.strip() in ("Returns", "Yields") and set(lines[i + 1].strip()) == {"-"}:
                    described = i + 3 < len(lines) and lines[i + 3].startswith("    ")
                    yield f"{path.relative_to(ROOT)}:{node.name}", lines[i + 2], described


def test_returns_sections_render_as_a_type_and_a_description():
    """mkdocstrings (numpy style) reads a Returns entry's first line as its type: prose
    there renders as one long code span, so it is a type with the prose indented below."""
    sections = list(_returns_sections())
    assert len(sections) > 10
    bad = [(where, first) for where, first, described in sections
           if not described or "``" in first or len(first.split()) > 4]
    assert bad == []


def test_the_gallery_shows_every_figure():
    """Every public plot function has its section, code and (committed) image."""
    import inspect

    from bayespal.analysis import plots

    page = (ROOT / "docs" / "gallery.md").read_text()
    names = [n for n, f in inspect.getmembers(plots, inspect.isfunction)
             if n.startswith("plot_") and f.__module__ == plots.__name__]
    assert len(names) >= 9
    for name in names:
        assert f"## {name}\n" in page and f"plots.{name}(" in page, name
        assert f"](gallery/{name}.png)" in page, name
        assert (ROOT / "docs" / "gallery" / f"{name}.png").stat().st_size > 5000, name
    assert (ROOT / "docs" / "gallery" / "report.html").exists()
