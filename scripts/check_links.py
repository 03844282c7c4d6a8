"""Fail when a page of the built site links to a page or anchor it lacks.

Usage: python scripts/check_links.py SITE_DIR

Reads every ``*.html`` under SITE_DIR. Each relative ``href`` and ``src``
must resolve to a file of the site (a directory means its ``index.html``)
and, with a ``#fragment``, to an element of that page with that ``id`` (or
an ``<a name>``). Links with a scheme (``https:``, ``mailto:``, ...) are
not fetched, as the check runs offline: they must only be well-formed
(``http(s)`` with a host). The 404 page and the search index are skipped.
"""

import html.parser
import pathlib
import sys
import urllib.parse

SKIPPED_PAGES = {"404.html"}


class Page(html.parser.HTMLParser):
    """The ids a page defines and the links it makes."""

    def __init__(self):
        super().__init__()
        self.ids = set()
        self.links = []  # (attribute value, line)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for name in ("href", "src"):
            # <link href> of stylesheets and icons, <a href>, <img src>,
            # <script src>: all must exist.
            if attrs.get(name):
                self.links.append((attrs[name], self.getpos()[0]))


def parse(path):
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def check_external(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and not parts.netloc:
        return f"malformed URL {url!r}"
    return None


def main(site):
    site = pathlib.Path(site).resolve()
    pages = {}

    def page_of(path):
        if path not in pages:
            pages[path] = parse(path)
        return pages[path]

    problems = []
    checked = external = 0
    for path in sorted(site.rglob("*.html")):
        if path.name in SKIPPED_PAGES:
            continue
        for url, line in page_of(path).links:
            where = f"{path.relative_to(site)}:{line}"
            parts = urllib.parse.urlsplit(url)
            if parts.scheme or url.startswith("//"):
                external += 1
                problem = check_external(url)
                if problem:
                    problems.append(f"{where}: {problem}")
                continue
            checked += 1
            if parts.path:
                target = path.parent / urllib.parse.unquote(parts.path)
                target = target.resolve()
                if target.is_dir():
                    target = target / "index.html"
            else:
                target = path  # "#anchor" on the same page
            if site not in target.parents and target != site:
                problems.append(f"{where}: {url!r} leaves the site")
                continue
            if not target.is_file():
                problems.append(f"{where}: {url!r}: no such file")
                continue
            fragment = urllib.parse.unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                if fragment not in page_of(target).ids:
                    problems.append(
                        f"{where}: {url!r}: no id {fragment!r} in "
                        f"{target.relative_to(site)}"
                    )
    for problem in problems:
        print(problem)
    print(
        f"Links: {checked} internal checked, {external} external "
        f"(syntax only), {len(problems)} broken, in {len(pages)} pages"
    )
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1])
