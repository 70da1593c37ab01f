"""codeservice.paper_card: the printed card of a paper code, read back as a scanner and a printer would.

The PDF goes through Debian's poppler-utils as it would through a print
driver: ``pdftoppm`` rasterises it (600 dpi, 300 dpi for a laser print, and
tilted a few degrees), zxing-cpp decodes the QR back to the exact code text,
``pdftotext`` finds the card's words as text (not pictures of text),
``pdffonts`` finds every font embedded, ``pdfimages`` finds no image at all
(the QR is vector rectangles) and ``pdfinfo`` the page size.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import zxingcpp
from helpers import TestKey, decoded_texts, poppler, rasterise, skip_or_fail
from offline_minting import HINT, a_paper_code
from PIL import Image

from codeservice import paper_card
from codeservice.errors import ConfigError
from codeservice.paper_card import CardQr, CodeTooLongForCard, FontNotFound, KnownFont

MM_PER_INCH = 25.4
# 2027-01-03T00:00:00+08:00: a code expiring as 3 January begins works all of 2 January.
EXPIRES_AT_MIDNIGHT = 1_798_905_600
# 2027-01-03T11:06:40+08:00: works all of 2 January, and not all of 3 January.
EXPIRES_AT_MIDDAY = EXPIRES_AT_MIDNIGHT + 11 * 3600 + 400
ISSUED_AT = EXPIRES_AT_MIDDAY - 30 * 86400  # 2026-12-04, CST
SERIAL = "AbCdEfGhIjI"


def qr_band(image: Image.Image) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the dark pixels above the first white gap under the top's first ink.

    On the card's front that is the QR symbol: its finder patterns reach its
    top, left, right and bottom edges, and its quiet zone is white.
    """
    width, height = image.size
    pixels = image.load()
    dark_rows = [any(pixels[x, y] < 128 for x in range(0, width, 2)) for y in range(height)]
    top = dark_rows.index(True)
    bottom = top
    gap = 0
    for y in range(top, height):
        if dark_rows[y]:
            bottom, gap = y, 0
        elif (gap := gap + 1) > image.info.get("dpi", (600,))[0] // 25:  # a white gap over 1 mm
            break
    dark_columns = [x for x in range(width) if any(pixels[x, y] < 128 for y in range(top, bottom + 1, 2))]
    return dark_columns[0], top, dark_columns[-1], bottom


@pytest.fixture(scope="module")
def paper_code(ed25519_key: TestKey) -> str:
    """A paper code as the library mints it, with the default claims and holder hint."""
    return a_paper_code(ed25519_key)


@pytest.fixture(scope="module")
def card_pdf(paper_code: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pdf = tmp_path_factory.mktemp("card") / "card.pdf"
    pdf.write_bytes(
        paper_card.render_card(
            paper_code, hint=HINT, expires_at=EXPIRES_AT_MIDDAY, serial=SERIAL, issued_at=ISSUED_AT
        )
    )
    return pdf


@pytest.fixture(scope="module")
def front_600dpi(card_pdf: Path) -> Image.Image:
    return rasterise(card_pdf, 600)


@pytest.fixture(scope="module")
def card_text(card_pdf: Path) -> str:
    return poppler("pdftotext", "-enc", "UTF-8", card_pdf, "-")


def test_a_default_paper_code_is_an_alphanumeric_version_13_symbol_at_over_half_a_millimetre(paper_code: str) -> None:
    geometry = paper_card.card_qr(paper_code)
    assert 300 <= len(paper_code) <= 340
    assert geometry == CardQr(version=13, modules=69, module_mm=0.66)
    assert geometry.side_mm <= paper_card.CARD_WIDTH_MM - 2 * paper_card.SIDE_MARGIN_MM


def test_both_pages_are_id1_card_size(card_pdf: Path) -> None:
    info = poppler("pdfinfo", "-f", "1", "-l", "2", card_pdf)
    assert re.search(r"^Pages:\s+2$", info, re.MULTILINE)
    sizes = re.findall(r"^Page\s+\d+ size:\s+([\d.]+) x ([\d.]+) pts", info, re.MULTILINE)
    assert len(sizes) == 2
    for width_pt, height_pt in sizes:
        assert float(width_pt) / 72 * MM_PER_INCH == pytest.approx(53.98, abs=0.01)
        assert float(height_pt) / 72 * MM_PER_INCH == pytest.approx(85.60, abs=0.01)


@pytest.mark.parametrize("dpi", [600, 300, 150])
def test_the_qr_decodes_to_the_code_text_at_level_q(card_pdf: Path, paper_code: str, dpi: int) -> None:
    """600 dpi as a good printer, 300 dpi as a plain office laser print, 150 as a poor one."""
    barcodes = zxingcpp.read_barcodes(rasterise(card_pdf, dpi), formats=zxingcpp.BarcodeFormat.QRCode)
    assert [(barcode.text, barcode.ec_level) for barcode in barcodes] == [(paper_code, "Q")]


@pytest.mark.parametrize("dpi", [300, 150])
@pytest.mark.parametrize("degrees", [-4, 3])
def test_the_qr_decodes_from_a_tilted_print(card_pdf: Path, paper_code: str, dpi: int, degrees: int) -> None:
    tilted = rasterise(card_pdf, dpi).rotate(degrees, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255)
    assert decoded_texts(tilted) == [paper_code]


def test_the_qr_is_drawn_at_its_module_size_with_a_white_quiet_zone(
    front_600dpi: Image.Image, paper_code: str
) -> None:
    geometry = paper_card.card_qr(paper_code)
    left, top, right, bottom = qr_band(front_600dpi)
    module_mm_across = (right - left + 1) / geometry.modules / 600 * MM_PER_INCH
    module_mm_down = (bottom - top + 1) / geometry.modules / 600 * MM_PER_INCH
    assert module_mm_across == pytest.approx(geometry.module_mm, rel=0.02)
    assert module_mm_down == pytest.approx(geometry.module_mm, rel=0.02)
    assert min(module_mm_across, module_mm_down) >= paper_card.MIN_MODULE_MM
    quiet_zone_px = paper_card.QUIET_ZONE_MODULES * geometry.module_mm / MM_PER_INCH * 600
    page_width = front_600dpi.size[0]
    assert min(left, top, page_width - 1 - right) >= quiet_zone_px - 2


def test_the_qr_is_vector_and_the_text_real_with_every_font_embedded(card_pdf: Path) -> None:
    images = poppler("pdfimages", "-list", card_pdf).splitlines()[2:]  # two header lines
    assert images == []
    fonts = poppler("pdffonts", card_pdf).splitlines()[2:]
    assert fonts, "the card's text is set in fonts"
    for line in fonts:
        name, *_, embedded, subset, unicode, _object, _generation = line.split()
        assert "CJK" in name
        assert (embedded, subset, unicode) == ("yes", "yes", "yes"), line


def test_the_card_holds_its_words_as_text_chinese_first(card_text: str) -> None:
    front, back = card_text.split("\f")[:2]
    for words in ["张*明", "生日 5月21日", "证件尾号 123X", "有效期至 2027年1月2日", "Valid until 2 January 2027"]:
        assert words in front
    assert front.index("有效期至") < front.index("Valid until")
    assert f"编号 Serial {SERIAL}" in front and f"编号 Serial {SERIAL}" in back
    joined = "".join(back.split())
    assert "".join(paper_card.LOST_CARD_ZH.split()) in joined
    assert "".join(paper_card.LOST_CARD_EN.split()) in joined
    assert joined.index("如遗失") < joined.index("Iflost")
    assert "签发 2026年12月4日 / Issued 4 December 2026" in back


def test_nothing_but_the_hint_of_the_holder_is_on_the_card(card_text: str) -> None:
    """The card shows what the code's hint holds (section 9), and no full ID number, phone or name."""
    assert not re.search(r"\d{6,}", card_text.replace(SERIAL, ""))


def test_a_card_without_a_birth_day_shows_the_id_tail_alone(paper_code: str, tmp_path: Path) -> None:
    pdf = tmp_path / "passport.pdf"
    pdf.write_bytes(
        paper_card.render_card(
            paper_code, hint={"n": "J*n Smith", "i": "E123"}, expires_at=EXPIRES_AT_MIDDAY,
            serial=SERIAL, issued_at=ISSUED_AT,
        )
    )
    front = poppler("pdftotext", "-enc", "UTF-8", "-l", "1", pdf, "-")
    assert "J*n Smith" in front and "证件尾号 E123" in front and "生日" not in front


def test_a_long_masked_name_is_set_smaller_to_fit(paper_code: str, tmp_path: Path) -> None:
    name = "阿*古丽·买买提"
    pdf = tmp_path / "long-name.pdf"
    pdf.write_bytes(
        paper_card.render_card(
            paper_code, hint={"n": name, "b": "1231", "i": "0012"}, expires_at=EXPIRES_AT_MIDDAY,
            serial=SERIAL, issued_at=ISSUED_AT,
        )
    )
    front = poppler("pdftotext", "-enc", "UTF-8", "-l", "1", pdf, "-")
    assert name in front and "生日 12月31日" in front
    assert decoded_texts(rasterise(pdf, 300)) == [paper_code]


@pytest.mark.parametrize(
    ("expires_at", "last_day"),
    [
        (EXPIRES_AT_MIDDAY, "2027-01-02"),
        (EXPIRES_AT_MIDNIGHT, "2027-01-02"),
        (EXPIRES_AT_MIDNIGHT + 1, "2027-01-02"),
        (EXPIRES_AT_MIDNIGHT + 86400, "2027-01-03"),
        (datetime(2027, 1, 3, 15, 59, 59, tzinfo=UTC), "2027-01-02"),  # 23:59:59 CST
        (datetime(2027, 1, 3, 16, 0, tzinfo=UTC), "2027-01-03"),  # midnight CST: all of 3 January
        (datetime(2027, 1, 4, 0, 0, tzinfo=timezone(timedelta(hours=8))), "2027-01-03"),
    ],
)
def test_the_card_names_the_last_day_the_code_works_all_day_in_china(
    expires_at: int | datetime, last_day: str
) -> None:
    assert paper_card.last_full_day(expires_at).isoformat() == last_day


def test_the_expiry_in_words() -> None:
    day = paper_card.last_full_day(EXPIRES_AT_MIDNIGHT + 86400)
    assert paper_card.expiry_zh(day) == "有效期至 2027年1月3日"
    assert paper_card.expiry_en(day) == "Valid until 3 January 2027"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"code_text": "RSD1:ABC"}, "RSP1:"),
        ({"code_text": "RSP1:abc"}, "Base45"),
        ({"code_text": "RSP1:" + "A" * 1500}, "under the 0.5 mm"),
        ({"code_text": "RSP1:" + "A" * 5000}, "does not fit any QR"),
        ({"hint": {"b": "0521", "i": "123X"}}, "masked name"),
        ({"hint": {"n": "张*明", "b": "0230", "i": "123X"}}, "MMDD"),
        ({"hint": {"n": "张*明", "b": "521", "i": "123X"}}, "MMDD"),
        ({"hint": {"n": "张*明", "i": "12345"}}, "last 4"),
        ({"hint": {"n": "张*明"}}, "last 4"),
        ({"serial": ""}, "serial"),
        ({"serial": "a serial"}, "serial"),
        ({"expires_at": datetime(2027, 1, 3)}, "aware"),  # a naive datetime
    ],
)
def test_input_that_is_not_a_paper_codes_is_a_clear_value_error(
    paper_code: str, changes: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "code_text": paper_code, "hint": HINT, "expires_at": EXPIRES_AT_MIDDAY, "serial": SERIAL,
        "issued_at": ISSUED_AT, **changes,
    }
    code_text = arguments.pop("code_text")
    with pytest.raises(ValueError, match=message):
        paper_card.render_card(code_text, **arguments)  # type: ignore[arg-type]


def test_a_code_too_long_for_the_card_is_refused_not_shrunk() -> None:
    with pytest.raises(CodeTooLongForCard, match=r"version-\d+ QR .* under the 0\.5 mm a scanner needs"):
        paper_card.card_qr("RSP1:" + "A" * 1500)


def test_a_time_of_another_type_is_a_type_error(paper_code: str) -> None:
    with pytest.raises(TypeError, match="seconds since the epoch"):
        paper_card.render_card(
            paper_code, hint=HINT, expires_at="2027-01-03", serial=SERIAL, issued_at=ISSUED_AT  # type: ignore[arg-type]
        )


# Finding a font.


def test_the_font_is_noto_sans_cjk_sc_from_debians_fonts_noto_cjk() -> None:
    if not Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").is_file():
        skip_or_fail("Debian's fonts-noto-cjk is not installed")
    fonts = paper_card.find_fonts()
    assert fonts.regular.path.name == "NotoSansCJK-Regular.ttc" and fonts.bold.path.name == "NotoSansCJK-Bold.ttc"
    assert fonts.regular.index == fonts.bold.index == 2  # the collection's SC face


def test_no_chinese_font_is_font_not_found_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, paper_code: str, tmp_path: Path
) -> None:
    absent = KnownFont(tmp_path / "NotoSansCJK-Regular.ttc", "Noto Sans CJK SC", "fonts-noto-cjk")
    monkeypatch.setattr(paper_card, "REGULAR_FONTS", (absent,))
    monkeypatch.setattr(paper_card, "BOLD_FONTS", (absent,))
    monkeypatch.setattr(paper_card, "FC_MATCH", None)
    with pytest.raises(FontNotFound) as raised:
        paper_card.render_card(paper_code, hint=HINT, expires_at=EXPIRES_AT_MIDDAY, serial=SERIAL, issued_at=ISSUED_AT)
    error = raised.value
    assert isinstance(error, ConfigError) and error.code == "font_not_found"
    assert str(tmp_path / "NotoSansCJK-Regular.ttc") in error.message
    assert error.message.endswith("install Debian's fonts-noto-cjk (apt-get install fonts-noto-cjk)")
    assert "\n" not in error.message


def test_a_font_without_chinese_glyphs_does_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    latin_only = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not latin_only.is_file():
        pytest.skip("DejaVu Sans is not installed")
    monkeypatch.setattr(paper_card, "REGULAR_FONTS", (KnownFont(latin_only, None, "fonts-dejavu-core"),))
    monkeypatch.setattr(paper_card, "FC_MATCH", None)
    with pytest.raises(FontNotFound, match="fonts-noto-cjk"):
        paper_card.find_fonts()


def test_fontconfig_finds_a_chinese_font_the_known_paths_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("fc-match") is None:
        skip_or_fail("fontconfig's fc-match is not installed")
    monkeypatch.setattr(paper_card, "REGULAR_FONTS", ())
    monkeypatch.setattr(paper_card, "BOLD_FONTS", ())
    fonts = paper_card.find_fonts()
    if Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc").is_file():
        assert (fonts.regular.path.name, fonts.bold.path.name) == ("NotoSansCJK-Regular.ttc", "NotoSansCJK-Bold.ttc")


def test_without_a_bold_face_the_regular_one_stands_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paper_card, "BOLD_FONTS", ())
    monkeypatch.setattr(paper_card, "FC_MATCH", None)
    fonts = paper_card.find_fonts()
    assert fonts.bold == fonts.regular
