"""html_to_text: what a reader of an html-only letter sees, as plain text."""

from __future__ import annotations

import pytest

from runtime.text import html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("", ""),
        ("   \n ", ""),
        ("plain words", "plain words"),
        ("<p>Hello <b>you</b></p>", "Hello you"),
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("<div>a<div>b</div></div>", "a\nb"),
        ("a<br>b", "a\nb"),
        ("<ul><li>x</li><li>y</li></ul>", "x\n\ny"),
        ("<h1>Title</h1>Text", "Title\nText"),
        ("a &amp; b &lt;c&gt; &quot;d&quot; &#252; &euro;", 'a & b <c> "d" ü €'),
        ("a&nbsp;&nbsp;b", "a b"),
        ("<p>  lots   of   space </p>", "lots of space"),
        ("<p>a</p>\n\n\n\n\n<p>b</p>", "a\n\nb"),
        ("<style>p { color: red }</style>shown<script>alert(1)</script>", "shown"),
        ("<html><head><title>T</title></head><body>Body</body></html>", "Body"),
        ("<p>unclosed <b>tags", "unclosed tags"),
        ("<p>a<p>b", "a\nb"),
        ("text with < and > signs", "text with < and > signs"),
        ("<!-- a comment -->visible", "visible"),
        ("<pre>keep\nlines</pre>", "keep\nlines"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("a<br/>b", "a\nb"),
        ("a<br />b", "a\nb"),
    ],
)
def test_a_self_closing_br_is_one_line_break_like_br(html: str, text: str) -> None:
    assert html_to_text(html) == html_to_text("a<br>b") == text


@pytest.mark.parametrize(
    "html",
    [
        "<html><head><title>T</title><body>Hello there</body></html>",
        "<html><head><meta charset=utf-8><body><p>Hello there</p></body></html>",
    ],
    ids=["title", "meta"],
)
def test_a_head_without_its_end_tag_does_not_swallow_the_body(html: str) -> None:
    assert html_to_text(html) == "Hello there"


def test_line_breaks_in_the_html_source_are_spaces_as_a_browser_shows_them() -> None:
    html = "<p>Hello, I would like\nto order five units.</p>"

    assert html_to_text(html) == "Hello, I would like to order five units."


def test_table_cells_do_not_run_together() -> None:
    text = html_to_text("<table><tr><td>Email</td><td>ann@customer.example</td></tr></table>")

    assert "Emailann" not in text
    assert "Email" in text and "ann@customer.example" in text


def test_nested_scripts_and_styles_are_skipped_and_text_after_them_kept() -> None:
    html = "<head><style>a{}</style><script>1</script></head><p>after</p><script>2</script><p>end</p>"

    assert html_to_text(html) == "after\n\nend"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        # Outlook and Word write conditional comments into the html of every list and image.
        ("<p>a</p><![ if !supportLists ]><span>1.</span><![ endif ]><p>b</p>", "a\n1.\nb"),
        ("<p>x<![ if !vml ]><img src=x><![endif]>y</p>", "xy"),
        ("<p>dangling <![ if", "dangling"),
        ("<![CDATA[ z ]]>q", "q"),
    ],
)
def test_marked_sections_of_office_html_are_read_not_raised(html: str, text: str) -> None:
    assert html_to_text(html) == text
