"""Fail when the built API reference misses a public name or shows a defect.

Usage: python scripts/check_api_reference.py SITE_DIR

`mkdocs build --strict` passes even when mkdocstrings renders a module
docstring and none of its members, so this reads the built HTML:

- every name in the ``__all__`` of ``keras_norms``, ``keras_norms.layers``,
  ``.initializers``, ``.ops`` and ``.callbacks`` has its own heading;
- no entry (heading) is a private name, one starting with ``_``;
- no page shows a private base class (a ``Bases:`` line);
- every row of a parameter table has a type, except the ``*args`` and
  ``**kwargs`` rows: their values are forwarded to other functions and
  have no single type;
- a Returns table with several rows names each row, so that the rows are
  the elements of a returned tuple, not the lines of one description
  that the docstring parser split;
- the pages with formulas load MathJax.
"""

import html.parser
import pathlib
import sys
import types

import keras_norms

MODULES = {
    keras_norms: "ops",
    keras_norms.layers: "layers",
    keras_norms.initializers: "initializers",
    keras_norms.ops: "ops",
    keras_norms.callbacks: "ops",
}


class _Table:
    def __init__(self, title, owner):
        self.title = title
        self.owner = owner
        self.columns = []
        self.rows = []


class ApiPage(html.parser.HTMLParser):
    """The object headings and the section tables of a mkdocstrings page."""

    def __init__(self):
        super().__init__()
        self.headings = []  # ids of the object headings, in page order
        self.tables = []
        self.has_bases = False
        self._text_target = None  # list collecting the current text
        self._section_title = None
        self._table = None
        self._row = None
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if "doc-heading" in classes and attrs.get("id"):
            self.headings.append(attrs["id"])
        if "doc-section-title" in classes:
            self._in_title = True
            self._section_title = ""
        elif tag == "table" and self._section_title:
            owner = self.headings[-1] if self.headings else None
            self._table = _Table(self._section_title.strip(), owner)
            self.tables.append(self._table)
            self._section_title = None
        elif self._table is not None and tag == "tr":
            self._row = []
        elif self._table is not None and tag in ("td", "th"):
            self._text_target = []

    def handle_endtag(self, tag):
        if self._in_title and tag == "span":
            self._in_title = False
        elif self._table is not None and tag in ("td", "th"):
            cell = " ".join("".join(self._text_target).split())
            self._text_target = None
            if tag == "th":
                self._table.columns.append(cell)
            elif self._row is not None:
                self._row.append(cell)
        elif self._table is not None and tag == "tr":
            if self._row:
                row = zip(self._table.columns, self._row, strict=True)
                self._table.rows.append(dict(row))
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._in_title:
            self._section_title += data
        if self._text_target is not None:
            self._text_target.append(data)
        if "Bases:" in data:
            self.has_bases = True


def main(site):
    texts = {
        name: (pathlib.Path(site) / "api" / name / "index.html").read_text()
        for name in sorted(set(MODULES.values()))
    }
    pages = {}
    for name, text in texts.items():
        pages[name] = ApiPage()
        pages[name].feed(text)
    problems = []
    for module, page_name in MODULES.items():
        headings = set(pages[page_name].headings)
        for name in module.__all__:
            if isinstance(getattr(module, name), types.ModuleType):
                continue  # a subpackage: it has its own page
            if f"{module.__name__}.{name}" not in headings:
                problems.append(
                    f"api/{page_name}: no heading {module.__name__}.{name}"
                )
    parameter_rows = untyped = untyped_variadic = 0
    for page_name, page in pages.items():
        for heading in page.headings:
            if any(part.startswith("_") for part in heading.split(".")):
                problems.append(f"api/{page_name}: private entry {heading}")
        if page.has_bases:
            problems.append(f"api/{page_name}: shows a 'Bases:' line")
        text = texts[page_name]
        if 'class="arithmatex"' in text and "mathjax" not in text.lower():
            problems.append(f"api/{page_name}: formulas without MathJax")
        if not any(t.title.startswith("Parameters") for t in page.tables):
            problems.append(f"api/{page_name}: no parameter table")
        for table in page.tables:
            if table.title.startswith("Parameters"):
                for row in table.rows:
                    parameter_rows += 1
                    if row.get("Type"):
                        continue
                    if row.get("Name", "").startswith("*"):
                        untyped_variadic += 1
                        continue
                    untyped += 1
                    problems.append(
                        f"api/{page_name}: {table.owner}: parameter "
                        f"{row.get('Name')!r} has no type"
                    )
            elif table.title.startswith("Returns") and len(table.rows) > 1:
                if not all(row.get("Name") for row in table.rows):
                    problems.append(
                        f"api/{page_name}: {table.owner}: Returns table of "
                        f"{len(table.rows)} unnamed rows (a description "
                        "split line by line?)"
                    )
    print(
        f"Parameter rows: {parameter_rows}, without a type: "
        f"{untyped + untyped_variadic} ({untyped_variadic} of them "
        "*args/**kwargs rows, allowed)"
    )
    for problem in problems:
        print(problem)
    if problems:
        sys.exit(1)
    total = sum(len(m.__all__) for m in MODULES)
    print(f"API reference: {total} public names, each with its heading")


if __name__ == "__main__":
    main(sys.argv[1])
