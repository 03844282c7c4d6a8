"""Fail when the built API reference misses a public name.

Usage: python scripts/check_api_reference.py SITE_DIR

`mkdocs build --strict` passes even when mkdocstrings renders a module
docstring and none of its members, so this reads the built HTML: every
name in the ``__all__`` of ``keras_norms``, ``keras_norms.layers``,
``.initializers``, ``.ops`` and ``.callbacks`` must have its own heading
(with a parameter table where it takes parameters), no page may show a
private base class, and the pages with formulas must load MathJax.
"""

import pathlib
import re
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


def main(site):
    pages = {
        name: (pathlib.Path(site) / "api" / name / "index.html").read_text()
        for name in set(MODULES.values())
    }
    problems = []
    for module, page_name in MODULES.items():
        page = pages[page_name]
        for name in module.__all__:
            if isinstance(getattr(module, name), types.ModuleType):
                continue  # a subpackage: it has its own page
            anchor = f'id="{module.__name__}.{name}"'
            if anchor not in page:
                problems.append(f"api/{page_name}: no heading {anchor}")
    for page_name, page in pages.items():
        if re.search(r"Bases:.*?_?[A-Z]\w*", page):
            problems.append(f"api/{page_name}: shows a 'Bases:' line")
        if 'class="arithmatex"' in page and "mathjax" not in page.lower():
            problems.append(f"api/{page_name}: formulas without MathJax")
        if page.count("Parameters:") == 0:
            problems.append(f"api/{page_name}: no parameter table")
    for problem in problems:
        print(problem)
    if problems:
        sys.exit(1)
    total = sum(len(m.__all__) for m in MODULES)
    print(f"API reference: {total} public names, each with its heading")


if __name__ == "__main__":
    main(sys.argv[1])
