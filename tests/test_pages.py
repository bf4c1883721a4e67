"""Pages that quote the program: kitpose.pages fills marked blocks, nesting their headings."""
import pytest

from kitpose import pages
from kitpose.errors import RunError


def test_a_block_is_filled_under_the_heading_above_it(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Section\n\n### Part\n\n```\n# not a heading\n```\n"
                    "<!-- kitpose:s -->\nold\n<!-- /kitpose:s -->\n\nafter\n")
    pages.fill(page, "s", "| a |\n|---|\n| 1 |\n\n## Claims\n\ntext\n\n### Detail\n")
    text = page.read_text()
    assert "old" not in text and "| 1 |" in text and text.endswith("<!-- /kitpose:s -->\n\nafter\n")
    assert "\n#### Claims\n" in text and "\n##### Detail\n" in text  # one level under "### Part"
    assert "# not a heading" in text  # code blocks are not headings


def test_nesting_keeps_levels_apart():
    assert pages.nest_headings("### A\n#### B\n", 1) == "## A\n### B\n"
    assert pages.nest_headings("no headings", 3) == "no headings"


def test_a_page_without_the_block_is_refused_before_work(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("nothing here\n")
    with pytest.raises(RunError, match="no block 's' to fill"):
        pages.check(page, "s")


def test_nesting_leaves_code_blocks_alone():
    from kitpose.pages import nest_headings

    text = "# Study\n\n```yaml\n# a comment\n```\n\n## Claims\n"
    assert nest_headings(text, 2) == "### Study\n\n```yaml\n# a comment\n```\n\n#### Claims\n"
