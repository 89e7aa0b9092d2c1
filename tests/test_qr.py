"""`shuoshi qr`: printable QR boards per grid; the codes decode back to the links residents
enrol with (web chat /r?grid=CODE, Telegram /start CODE)."""

from __future__ import annotations

import asyncio
import html
import io
import re

import pytest
from PIL import Image

from bot.app import open_app
from bot.cli.main import main
from bot.cli.qr import board_texts
from bot.config import Settings, WebSettings
from bot.qr import files as board_files
from bot.qr import fonts
from bot.qr.links import telegram_link
from handlers.render import Renderer
from storage.grid_boards import GridBoard
from storage.org_file import load_org_file
from tests.support.paths import EXAMPLE_COUNTY
from tests.support.qr import decode, page_sizes_mm, pdf_pages
from tests.support.webchat import Browser, serve

BASE = "https://shuoshi.example.org"
CG_GRIDS = [f"JL-CG-0{v}-G{g}" for v in (1, 2) for g in (1, 2, 3)]
XGC_GRIDS = [f"JL-XGC-0{v}-G{g}" for v in (1, 2) for g in (1, 2, 3)]

needs_cjk_font = pytest.mark.skipif(
    fonts.find_font(None) is None,
    reason="no Chinese font installed (apt-get install fonts-wqy-zenhei; .ci/run does)",
)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def web(grid: str) -> str:
    return f"{BASE}/r?grid={grid}"


def telegram(grid: str, bot: str = "shuoshi_bot") -> str:
    return f"https://t.me/{bot}?start={grid}"


@pytest.fixture
def county(workdir, capsys):
    assert run(capsys, "init")[0] == 0
    return workdir


@needs_cjk_font
def test_one_grid_as_pdf_carries_the_web_chat_link(county, capsys, monkeypatch):
    monkeypatch.setenv("SHUOSHI_WEB__PUBLIC_URL", BASE + "/")
    code, out, err = run(capsys, "qr", "JL-XGC-01-G2")
    assert (code, err) == (0, "")
    assert list((county / "qr").iterdir()) == [county / "qr" / "JL-XGC-01-G2.pdf"]
    assert "1" in out and "PDF" in out and "qr" in out
    path = county / "qr" / "JL-XGC-01-G2.pdf"
    assert page_sizes_mm(path) == [(210, 297)]  # A4
    [page] = pdf_pages(path)
    # No Telegram token: the web chat's code alone, which opens the chat in this grid.
    assert decode(page) == {web("JL-XGC-01-G2")}


@needs_cjk_font
def test_a_township_as_png_with_the_telegram_deep_link_and_a_township_pdf(county, capsys):
    code, out, err = run(
        capsys, "qr", "JL-CG", "--format", "png", "--base-url", BASE, "--bot-username",
        "@shuoshi_bot", "--township-pdf", "--out", "boards",
    )  # fmt: skip
    assert code == 0, err
    written = sorted(p.name for p in (county / "boards").iterdir())
    assert written == sorted([f"{g}.png" for g in CG_GRIDS] + ["JL-CG.pdf"])
    for grid in CG_GRIDS:
        image = Image.open(county / "boards" / f"{grid}.png")
        assert round(image.info["dpi"][0]) == 200
        assert decode(image) == {web(grid), telegram(grid)}
    # The township's PDF: a page per grid, in the order of their codes.
    pages = pdf_pages(county / "boards" / "JL-CG.pdf")
    assert [decode(p) for p in pages] == [{web(g), telegram(g)} for g in CG_GRIDS]
    assert "@shuoshi_bot" in out and "1" in out.splitlines()[1]


@needs_cjk_font
def test_the_whole_county_one_file_per_grid_and_a_pdf_per_township(county, capsys, monkeypatch):
    # Small batches, so a township's PDF is written in several appends as in a big county.
    monkeypatch.setattr(board_files, "PAGES_PER_APPEND", 4)
    monkeypatch.setenv("SHUOSHI_WEB__PUBLIC_URL", BASE)
    code, out, err = run(capsys, "qr", "--all", "--township-pdf")
    assert code == 0, err
    grids = CG_GRIDS + XGC_GRIDS
    assert sorted(p.name for p in (county / "qr").iterdir()) == sorted(
        [f"{g}.pdf" for g in grids] + ["JL-CG.pdf", "JL-XGC.pdf"]
    )
    assert (
        out.splitlines()[0]
        == "已生成 12 张二维码码牌（PDF），保存在 qr，每个网格一个文件，以网格编码命名。"
    )
    assert out.splitlines()[1] == "另生成 2 个乡镇 PDF，每个网格一页。"
    pages = pdf_pages(county / "qr" / "JL-XGC.pdf")
    assert [decode(p) for p in pages] == [{web(g)} for g in XGC_GRIDS]
    for grid in ("JL-CG-02-G3", "JL-XGC-01-G1"):
        assert [decode(p) for p in pdf_pages(county / "qr" / f"{grid}.pdf")] == [{web(grid)}]
    # A second run replaces the township files instead of appending to them.
    assert run(capsys, "qr", "--all", "--township-pdf")[0] == 0
    assert len(pdf_pages(county / "qr" / "JL-XGC.pdf")) == 6


@needs_cjk_font
async def test_with_a_telegram_token_the_bot_username_comes_from_telegram(
    county, capsys, monkeypatch
):
    from tests.fake_telegram import FakeTelegram

    async with FakeTelegram(bot_username="julu_shuoshi_bot") as fake:
        monkeypatch.setenv("SHUOSHI_TELEGRAM__TOKEN", "123456:TEST")
        monkeypatch.setenv("SHUOSHI_TELEGRAM__API_BASE", fake.base_url)
        # main() runs its own event loop: in a thread, while the fake answers on this one.
        code = await asyncio.to_thread(
            main, ["qr", "JL-CG-01-G1", "--base-url", BASE, "--format", "png"]
        )
    out, err = capsys.readouterr()
    assert code == 0, err
    image = Image.open(county / "qr" / "JL-CG-01-G1.png")
    assert decode(image) == {web("JL-CG-01-G1"), telegram("JL-CG-01-G1", "julu_shuoshi_bot")}
    assert "@julu_shuoshi_bot" in out


async def test_a_token_telegram_refuses_or_cannot_reach_is_one_line(county, capsys, monkeypatch):
    from tests.fake_telegram import FakeTelegram
    from tests.support.net import free_port

    args = ["qr", "JL-CG-01-G1", "--base-url", BASE]
    async with FakeTelegram() as fake:
        monkeypatch.setenv("SHUOSHI_TELEGRAM__TOKEN", "654321:REVOKED")
        monkeypatch.setenv("SHUOSHI_TELEGRAM__API_BASE", fake.base_url)
        code = await asyncio.to_thread(main, args)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "[telegram] token" in one_error_line(err)
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("SHUOSHI_TELEGRAM__TOKEN", "123456:TEST")
    monkeypatch.setenv("SHUOSHI_TELEGRAM__API_BASE", closed)
    code = await asyncio.to_thread(main, args)
    out, err = capsys.readouterr()
    assert code == 1 and closed in one_error_line(err)
    assert not (county / "qr").exists()


def test_a_grid_code_a_telegram_link_cannot_carry_gets_the_web_code_only():
    board = GridBoard("JL-CG.01", "东关网格", "Dongguan Grid", "东关社区", "Dongguan", "JL-CG",
                      "城关街道", "Chengguan")  # fmt: skip
    texts = board_texts(Renderer("zh_CN"), board, BASE, "shuoshi_bot")
    assert texts.web_link == web("JL-CG.01") and texts.telegram_link is None
    assert texts.places == "城关街道 · 东关社区" and texts.title == "东关网格"
    assert telegram_link("shuoshi_bot", "JL-CG-01") == telegram("JL-CG-01")
    english = board_texts(Renderer("en"), board, BASE + "/", None)
    assert english.places == "Chengguan · Dongguan" and english.web_link == web("JL-CG.01")


def test_english_boards_need_no_chinese_font(county, capsys, monkeypatch):
    monkeypatch.setattr(fonts, "CJK_FONTS", ())
    monkeypatch.setenv("SHUOSHI_LOCALE", "en")
    code, out, err = run(capsys, "qr", "JL-CG-01-G1", "--base-url", BASE, "--format", "png")
    assert code == 0, err
    assert decode(Image.open(county / "qr" / "JL-CG-01-G1.png")) == {web("JL-CG-01-G1")}
    assert out.startswith("Wrote 1 QR board(s) as PNG to qr")


def one_error_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_bad_input_is_one_localized_line(county, capsys, monkeypatch):
    monkeypatch.setattr(fonts, "CJK_FONTS", ())
    cases = [
        # No public_url and no --base-url: where would the codes point?
        (["qr", "JL-CG-01-G1"], "[web] public_url"),
        (["qr", "JL-NOPE", "--base-url", BASE], "没有编码为 JL-NOPE 的网格"),
        (["qr", "JL-CG", "--base-url", "shuoshi.example.org"], "不是网址"),
        (
            ["qr", "JL-CG", "--base-url", BASE, "--bot-username", "a b"],
            "不是 Telegram 机器人用户名",
        ),
        (
            ["qr", "JL-CG", "--base-url", BASE, "--font", "missing.ttf"],
            "字体文件 missing.ttf 不存在",
        ),
        # Chinese names and no Chinese font: refused with the way out, not printed as boxes.
        (["qr", "JL-CG", "--base-url", BASE], "fonts-wqy-zenhei"),
    ]
    for args, expected in cases:
        code, out, err = run(capsys, *args)
        assert code == 2 and out == "", (args, out)
        assert expected in one_error_line(err) and err.startswith("错误："), (args, err)
    assert not (county / "qr").exists() or not any((county / "qr").iterdir())


@needs_cjk_font
def test_an_unwritable_output_directory_is_one_line(county, capsys):
    (county / "taken").write_text("a file, not a directory")
    for out_dir in ("taken", "taken/boards"):
        code, out, err = run(capsys, "qr", "JL-CG-01-G1", "--base-url", BASE, "--out", out_dir)
        assert code == 2 and out == ""
        assert f"无法把码牌写入 {out_dir}" in one_error_line(err)


def test_without_an_organisation_it_says_how_to_load_one(workdir, capsys):
    code, out, err = run(capsys, "qr", "--all", "--base-url", BASE)
    assert code == 2 and "shuoshi org load" in one_error_line(err)


# The web chat's start page: a grid's code for staff to print ------------------------------


async def test_the_start_page_of_a_grid_links_its_qr_code(tmp_path, clock, monkeypatch):
    monkeypatch.delenv("SHUOSHI_LOCALE", raising=False)
    settings = Settings(data_dir=tmp_path / "data", web=WebSettings(public_url=BASE))
    app = await open_app(settings, clock)
    await load_org_file(app.sessions, EXAMPLE_COUNTY)
    try:
        async for client, _chat in serve(app, demo=False):
            start = await Browser(client).get("/r?grid=JL-CG-01-G3")
            found = re.search(r'<a href="([^"]+)" data-testid="grid-qr">([^<]+)</a>', start)
            assert found is not None and found.group(2) == "本网格二维码（供打印）"
            response = await client.get(html.unescape(found.group(1)))
            assert response.status == 200 and response.content_type == "image/png"
            image = Image.open(io.BytesIO(await response.read()))
            assert decode(image) == {web("JL-CG-01-G3")}  # [web] public_url, not the test host
            response = await client.get("/r/qr?grid=JL-CG-01-G3&format=svg")
            assert response.content_type == "image/svg+xml"
            assert (await response.text()).startswith("<svg")
            # Only grids have codes; the start page without a grid offers none.
            for query in ("grid=JL-NOPE", "grid=JL-CG", "grid=%3Cb%3E", ""):
                response = await client.get(f"/r/qr?{query}")
                assert response.status == 404
                assert "没有这个编码的网格" in await response.text()
            assert 'data-testid="grid-qr"' not in await Browser(client).get("/r")
    finally:
        await app.close()
