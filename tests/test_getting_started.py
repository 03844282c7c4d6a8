"""The getting-started page's first model reaches the accuracy the page
promises, with the page's own code (read from docs/getting_started.md, so
the code shown is the code checked; the page marks that block ``notest``
so that it is not also run a second time by the docs test)."""

import os
import re

PAGE = os.path.join(
    os.path.dirname(os.path.dirname(__file__)), "docs", "getting_started.md"
)


def first_model_code():
    with open(PAGE) as f:
        page = f.read()
    section = page[page.index("## A first model") :]
    return re.search(r"```\{\.python notest\}\n(.*?)```", section, re.S)[1]


def test_first_model_reaches_the_promised_accuracy(capsys):
    code = first_model_code()
    assert "0.90 or more" in code  # what the page promises
    namespace = {}
    exec(compile(code, PAGE, "exec"), namespace)
    assert namespace["accuracy"] >= 0.90, capsys.readouterr().out
