"""The printed card of a paper code (contract section 9): a PDF of ID-1 size, two sides.

Pure: a code's text, its holder hint, expiry and serial in; PDF bytes out. No
Flask, no database, no clock (the dates are parameters).

**Why ID-1** (85.60 x 53.98 mm, ISO/IEC 7810, the size of a bank card and of
the resident ID card it is checked against). The resident carries the card
in the wallet or card sleeve that already holds the ID card the staff compare
it with; a card printer at a service desk prints the size natively, and an
office printer prints it at 100 % to be cut out and laminated in a standard
card pouch. A6 (105 x 148 mm) fits no wallet: folded to, it creases across
the QR or the text. The card stands upright (53.98 mm wide, 85.60 mm tall) so
that the QR takes the whole width:
a default paper code (~325 Base45 characters, alphanumeric mode) is a
version-13 symbol at level Q, 69 modules, which with its 4-module quiet zone
gets about 0.66 mm per module, over the 0.5 mm a desk or gate scanner needs
from a laser print (a code of up to 644 characters, version 19, fits at 0.5 mm or
more). A code too long for 0.5 mm on the card is refused
(:class:`CodeTooLongForCard`), never printed smaller. Making a card takes
about 1 s, most of it fpdf2 reading and subsetting the two CJK faces.

**Front** (for the scanner and the staff): the QR, drawn as vector
rectangles so it prints crisp at any resolution; the masked name in large
type with the birth month and day (resident ID holders only) and the ID
number's last four characters; the expiry date in words in Chinese and
English; the serial. **Back** (for the resident): what the card is, to show
it with the ID card, what to do if it is lost, the issue date and the serial.

**Fonts**: real text, embedded and subset, from Debian's font packages found
at run time (:func:`find_fonts`): Noto Sans CJK SC from ``fonts-noto-cjk``
first, then fontconfig's best match for Simplified Chinese (``fc-match``)
that has every glyph the card needs.
None found raises :class:`FontNotFound`, naming the package to install.

**Dates** are China Standard Time (UTC+8), as everywhere in the service. The
card names the last day on which the code works all day, so it never promises
a day on which the code would be refused: a code that expires at 11:06 on
3 January is "valid until 2 January"; one that expires at midnight starting
4 January is "valid until 3 January".
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

import qrcode
from fontTools.ttLib import TTCollection, TTFont, TTLibError
from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos
from qrcode.constants import ERROR_CORRECT_Q
from qrcode.util import MODE_ALPHA_NUM, QRData

from .errors import ConfigError

CARD_WIDTH_MM = 53.98
CARD_HEIGHT_MM = 85.60
ERROR_CORRECTION = ERROR_CORRECT_Q
QUIET_ZONE_MODULES = 4
MIN_MODULE_MM = 0.5
# The largest module the card gives; a short code does not need a QR wider than this.
MAX_MODULE_MM = 0.80
# White card left and right of the QR's quiet zone (a card printer's unprintable edge).
SIDE_MARGIN_MM = 1.5
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")
PAPER_CODE_PREFIX = "RSP1:"

LOST_CARD_ZH = "如遗失，请携带身份证件到社区事务受理服务中心挂失补办；补办后旧卡自动失效。"
LOST_CARD_EN = (
    "If lost, bring your ID card to a community service centre: "
    "a new card is issued and this one stops working."
)
TITLE_ZH = "居民服务码·纸质码"
TITLE_EN = "Resident code: paper card"
SHOW_WITH_ID_ZH = "请与本人身份证件一同出示，工作人员核对后扫码。"
SHOW_WITH_ID_EN = "Show it with your ID card: the staff check the card against it, then scan."

_MONTHS_EN = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
# QR's alphanumeric set, which is Base45's alphabet (RFC 9285 section 4).
_ALPHANUMERIC = re.compile(r"[0-9A-Z $%*+\-./:]+")
_BIRTH_MONTH_DAY = re.compile(r"(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])")
_SERIAL = re.compile(r"[0-9A-Za-z_\-]{1,32}")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class FontNotFound(ConfigError):
    """No installed font has the card's Chinese glyphs; the message names the Debian package."""

    code = "font_not_found"
    default_message = (
        "no font with Chinese glyphs for the paper card: install Debian's fonts-noto-cjk "
        "(apt-get install fonts-noto-cjk)"
    )


class CodeTooLongForCard(ValueError):
    """The code's QR does not fit the card at 0.5 mm per module."""


@dataclass(frozen=True)
class KnownFont:
    """A font file a Debian package installs; ``face``: the family to pick in a collection."""

    path: Path
    face: str | None
    package: str


@dataclass(frozen=True)
class CardFont:
    """A font file and the index of its face (0 unless the file is a collection)."""

    path: Path
    index: int = 0


@dataclass(frozen=True)
class CardFonts:
    regular: CardFont
    bold: CardFont


@dataclass(frozen=True)
class CardQr:
    """The QR as the card draws it: version, modules per side (no quiet zone), module size."""

    version: int
    modules: int
    module_mm: float

    @property
    def side_mm(self) -> float:
        """The symbol with its quiet zone."""
        return (self.modules + 2 * QUIET_ZONE_MODULES) * self.module_mm


# In order of preference. Bold faces are optional: the regular face stands in.
REGULAR_FONTS: tuple[KnownFont, ...] = (
    KnownFont(Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"), "Noto Sans CJK SC", "fonts-noto-cjk"),
    KnownFont(Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"), None, "fonts-droid-fallback"),
    KnownFont(Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), "WenQuanYi Zen Hei", "fonts-wqy-zenhei"),
)
BOLD_FONTS: tuple[KnownFont, ...] = (
    KnownFont(Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"), "Noto Sans CJK SC", "fonts-noto-cjk"),
)
# fontconfig's matcher, for a Chinese font installed elsewhere; None: not asked.
FC_MATCH: str | None = "fc-match"

# Every character the card's fixed wording needs, and a sample of the variable parts.
_FIXED_TEXT = (
    LOST_CARD_ZH + LOST_CARD_EN + TITLE_ZH + TITLE_EN + SHOW_WITH_ID_ZH + SHOW_WITH_ID_EN
    + "有效期至年月日生证件尾号编签发 Valid until Born Issued Serial ID *0123456789" + "".join(_MONTHS_EN)
)


def find_fonts() -> CardFonts:
    """The card's regular and bold faces: the first known Debian font present, else fontconfig's.

    A font qualifies only if it has a glyph for every character of the
    card's fixed wording. Raises :class:`FontNotFound` when none does.
    """
    regular = _first_usable(REGULAR_FONTS) or _fontconfig_font(":lang=zh-cn")
    if regular is None:
        looked_in = ", ".join(str(font.path) for font in REGULAR_FONTS)
        raise FontNotFound(
            "no font with Chinese glyphs for the paper card (looked for "
            f"{looked_in}{' and asked fontconfig' if FC_MATCH and shutil.which(FC_MATCH) else ''}): "
            "install Debian's fonts-noto-cjk (apt-get install fonts-noto-cjk)"
        )
    bold = _first_usable(BOLD_FONTS) or _fontconfig_font(":lang=zh-cn:weight=bold") or regular
    return CardFonts(regular=regular, bold=bold)


def card_qr(code_text: str) -> CardQr:
    """The QR of a paper code's text at level Q, alphanumeric mode, and its module size on the card.

    The module is as large as the card's width allows (at most
    :data:`MAX_MODULE_MM`), rounded down to 0.01 mm. Raises
    :class:`CodeTooLongForCard` below :data:`MIN_MODULE_MM`.
    """
    qr = _qr_code(code_text)
    modules = qr.modules_count
    fitting = (CARD_WIDTH_MM - 2 * SIDE_MARGIN_MM) / (modules + 2 * QUIET_ZONE_MODULES)
    module_mm = min(MAX_MODULE_MM, int(fitting * 100) / 100)
    if module_mm < MIN_MODULE_MM:
        raise CodeTooLongForCard(
            f"a {len(code_text)}-character code is a version-{qr.version} QR ({modules} modules): "
            f"{module_mm:.2f} mm per module on the card, under the {MIN_MODULE_MM} mm a scanner needs"
        )
    return CardQr(version=qr.version, modules=modules, module_mm=module_mm)


def render_card(
    code_text: str,
    *,
    hint: Mapping[str, str],
    expires_at: datetime | int,
    serial: str,
    issued_at: datetime | int,
    fonts: CardFonts | None = None,
) -> bytes:
    """The card of a paper code as a two-page PDF (front, back) of ID-1 size.

    ``code_text`` is the whole code (``RSP1:`` and Base45); ``hint`` the
    credential's holder hint (``n`` the masked name, ``b`` the birth "MMDD"
    or absent, ``i`` the ID number's last four characters); ``expires_at``
    and ``issued_at`` the credential's ``exp`` and ``iat`` (seconds since the
    epoch, or aware datetimes); ``serial`` what staff quote for this card
    (the cti in base64url, say). Raises ``ValueError`` (``TypeError`` for a
    time of another type) for input that is not these,
    :class:`CodeTooLongForCard` (a ``ValueError``), and :class:`FontNotFound`.
    """
    qr_info = card_qr(code_text)
    name, birth, id_tail = _checked_hint(hint)
    if not _SERIAL.fullmatch(serial):
        raise ValueError(f"the serial must be 1-32 characters of base64url, got {serial!r}")
    last_day = last_full_day(expires_at)
    issued_day = _as_cst(issued_at).date()
    fonts = fonts or find_fonts()

    pdf = FPDF(unit="mm", format=(CARD_WIDTH_MM, CARD_HEIGHT_MM))
    pdf.set_creation_date(_as_cst(issued_at).astimezone(UTC))
    pdf.set_title(f"{TITLE_ZH} {serial}")
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.c_margin = 0  # text starts where its cell does
    pdf.add_font("card", "", str(fonts.regular.path), collection_font_number=fonts.regular.index)
    pdf.add_font("card", "B", str(fonts.bold.path), collection_font_number=fonts.bold.index)

    _front(pdf, code_text, qr_info, name=name, birth=birth, id_tail=id_tail, last_day=last_day, serial=serial)
    _back(pdf, issued_day=issued_day, serial=serial)
    return bytes(pdf.output())


def last_full_day(expires_at: datetime | int) -> date:
    """The last day (China Standard Time) on which a code expiring at ``expires_at`` works all day."""
    expiry = _as_cst(expires_at)
    return expiry.date() - timedelta(days=1)


def expiry_zh(day: date) -> str:
    return f"有效期至 {day.year}年{day.month}月{day.day}日"


def expiry_en(day: date) -> str:
    return f"Valid until {day.day} {_MONTHS_EN[day.month - 1]} {day.year}"


# The two sides.

_INK = (0, 0, 0)
_GREY = (90, 90, 90)
_TEXT_MARGIN_MM = 3.5
_PT_MM = 25.4 / 72
# Punctuation that may not begin a line of Chinese (a simple 禁则: the last character moves down with it).
_NO_LINE_START = set("，。；：、！？）」』》")
# How many characters back a line may break at punctuation rather than fill up.
_PUNCTUATION_REACH = 5


def _front(
    pdf: FPDF,
    code_text: str,
    qr_info: CardQr,
    *,
    name: str,
    birth: str | None,
    id_tail: str,
    last_day: date,
    serial: str,
) -> None:
    pdf.add_page()
    qr_left = (CARD_WIDTH_MM - qr_info.side_mm) / 2
    qr_top = SIDE_MARGIN_MM
    _draw_qr(pdf, code_text, qr_info, left=qr_left, top=qr_top)

    width = CARD_WIDTH_MM - 2 * _TEXT_MARGIN_MM
    y = qr_top + qr_info.side_mm + 0.6
    # The holder: the masked name large on the left, the hint in two lines on the right.
    name_size = _fitting_size(pdf, name, "B", 24, width * 0.55)
    hint_lines = ([f"生日 {int(birth[:2])}月{int(birth[2:])}日"] if birth else []) + [f"证件尾号 {id_tail}"]
    hint_size = min(_fitting_size(pdf, line, "", 11, width * 0.45) for line in hint_lines)
    pdf.set_text_color(*_INK)
    pdf.set_font("card", "B", name_size)
    pdf.set_xy(_TEXT_MARGIN_MM, y)
    pdf.cell(width * 0.55, 10, name, align=Align.L)
    pdf.set_font("card", "", hint_size)
    hint_line_mm = hint_size * _PT_MM * 1.3
    hint_top = y + (10 - hint_line_mm * len(hint_lines)) / 2
    for number, line in enumerate(hint_lines):
        pdf.set_xy(_TEXT_MARGIN_MM + width * 0.55, hint_top + number * hint_line_mm)
        pdf.cell(width * 0.45, hint_line_mm, line, align=Align.R)
    y += 10.8

    pdf.set_draw_color(*_GREY)
    pdf.set_line_width(0.2)
    pdf.line(_TEXT_MARGIN_MM, y, CARD_WIDTH_MM - _TEXT_MARGIN_MM, y)
    y += 0.9

    chinese, english = expiry_zh(last_day), expiry_en(last_day)
    pdf.set_font("card", "B", _fitting_size(pdf, chinese, "B", 13, width))
    pdf.set_xy(_TEXT_MARGIN_MM, y)
    pdf.cell(width, 6, chinese, align=Align.L)
    y += 6
    pdf.set_font("card", "", _fitting_size(pdf, english, "", 10, width))
    pdf.set_xy(_TEXT_MARGIN_MM, y)
    pdf.cell(width, 4.8, english, align=Align.L)

    pdf.set_text_color(*_GREY)
    pdf.set_font("card", "", 7)
    pdf.set_xy(_TEXT_MARGIN_MM, CARD_HEIGHT_MM - 5.2)
    pdf.cell(width, 3.5, f"编号 Serial {serial}", align=Align.L)


def _back(pdf: FPDF, *, issued_day: date, serial: str) -> None:
    pdf.add_page()
    width = CARD_WIDTH_MM - 2 * _TEXT_MARGIN_MM
    pdf.set_text_color(*_INK)
    pdf.set_xy(_TEXT_MARGIN_MM, 5)
    pdf.set_font("card", "B", _fitting_size(pdf, TITLE_ZH, "B", 14, width))
    pdf.cell(width, 7, TITLE_ZH, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_x(_TEXT_MARGIN_MM)
    pdf.set_font("card", "", 9)
    pdf.cell(width, 4.5, TITLE_EN, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def chinese(text: str, gap_before: float) -> None:
        pdf.set_font("card", "", 9.5)
        line_mm = 9.5 * _PT_MM * 1.4
        y = pdf.get_y() + gap_before
        for line in _wrapped_chinese(pdf, text, width):
            pdf.set_xy(_TEXT_MARGIN_MM, y)
            pdf.cell(width, line_mm, line, align=Align.L)
            y += line_mm
        pdf.set_y(y)

    def english(text: str, gap_before: float) -> None:
        pdf.set_xy(_TEXT_MARGIN_MM, pdf.get_y() + gap_before)
        pdf.set_font("card", "", 7.5)
        pdf.multi_cell(width, 7.5 * _PT_MM * 1.3, text, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    chinese(SHOW_WITH_ID_ZH, 3.5)
    english(SHOW_WITH_ID_EN, 0.6)
    rule_y = pdf.get_y() + 2.2
    pdf.set_draw_color(*_GREY)
    pdf.set_line_width(0.2)
    pdf.line(_TEXT_MARGIN_MM, rule_y, CARD_WIDTH_MM - _TEXT_MARGIN_MM, rule_y)
    chinese(LOST_CARD_ZH, 4.2)
    english(LOST_CARD_EN, 0.6)

    pdf.set_text_color(*_GREY)
    issued = (
        f"签发 {issued_day.year}年{issued_day.month}月{issued_day.day}日 / "
        f"Issued {issued_day.day} {_MONTHS_EN[issued_day.month - 1]} {issued_day.year}"
    )
    lines = [issued, f"编号 Serial {serial}"]
    y = CARD_HEIGHT_MM - 5.2 - 3.5 * (len(lines) - 1)
    for line in lines:
        pdf.set_font("card", "", _fitting_size(pdf, line, "", 7, width))
        pdf.set_xy(_TEXT_MARGIN_MM, y)
        pdf.cell(width, 3.5, line, align=Align.L)
        y += 3.5


def _draw_qr(pdf: FPDF, code_text: str, qr_info: CardQr, *, left: float, top: float) -> None:
    """The dark modules as one filled path of rectangles, a rectangle per horizontal run.

    One path, so a renderer fills the union: no hairline seams between
    neighbouring runs. The quiet zone is the card's white.
    """
    qr = _qr_code(code_text)
    origin_x = left + QUIET_ZONE_MODULES * qr_info.module_mm
    origin_y = top + QUIET_ZONE_MODULES * qr_info.module_mm
    size = qr_info.module_mm
    with pdf.new_path() as path:
        path.style.fill_color = "#000000"
        path.style.stroke_color = None
        path.style.paint_rule = "FILL_NONZERO"
        for row_number, row in enumerate(qr.modules):
            column = 0
            while column < len(row):
                if not row[column]:
                    column += 1
                    continue
                start = column
                while column < len(row) and row[column]:
                    column += 1
                path.rectangle(origin_x + start * size, origin_y + row_number * size, (column - start) * size, size)


# Helpers.


def _qr_code(code_text: str) -> qrcode.QRCode[Any]:
    if not code_text.startswith(PAPER_CODE_PREFIX) or not _ALPHANUMERIC.fullmatch(code_text):
        raise ValueError("a paper code is RSP1: followed by Base45 (QR's alphanumeric characters)")
    qr = qrcode.QRCode(version=None, error_correction=ERROR_CORRECTION, border=0)
    # never byte mode: ~1.4x the modules (types-qrcode says MODE_ALPHA_NUM is an int, not Literal[2]:
    # unused-ignore for the day it does)
    qr.add_data(QRData(code_text, mode=MODE_ALPHA_NUM))  # type: ignore[call-overload, unused-ignore]
    try:
        qr.make(fit=True)
    except ValueError as exc:  # qrcode 8.2: "Invalid version (was 41, ...)"
        raise CodeTooLongForCard(f"a {len(code_text)}-character code does not fit any QR at level Q") from exc
    return qr


def _checked_hint(hint: Mapping[str, str]) -> tuple[str, str | None, str]:
    name, birth, id_tail = hint.get("n"), hint.get("b"), hint.get("i")
    if not isinstance(name, str) or not 1 <= len(name) <= 12 or not name.isprintable():
        raise ValueError("the hint's n must be the masked name, 1-12 printable characters")
    if birth is not None and (not isinstance(birth, str) or not _valid_month_day(birth)):
        raise ValueError(f"the hint's b must be a birth month and day MMDD, got {birth!r}")
    if not isinstance(id_tail, str) or not 1 <= len(id_tail) <= 4 or not id_tail.isalnum() or not id_tail.isascii():
        raise ValueError("the hint's i must be the ID number's last 4 characters")
    return name, birth, id_tail


def _valid_month_day(text: str) -> bool:
    match = _BIRTH_MONTH_DAY.fullmatch(text)
    return bool(match) and int(text[2:]) <= _DAYS_IN_MONTH[int(text[:2]) - 1]


def _as_cst(moment: datetime | int) -> datetime:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("a datetime for the card must be aware (tzinfo set)")
        return moment.astimezone(CHINA_STANDARD_TIME)
    if isinstance(moment, bool) or not isinstance(moment, int):
        raise TypeError(f"a time for the card is seconds since the epoch or an aware datetime, got {moment!r}")
    return datetime.fromtimestamp(moment, CHINA_STANDARD_TIME)


def _wrapped_chinese(pdf: FPDF, text: str, width: float) -> list[str]:
    """Chinese text in lines of at most ``width`` mm at the current font, no line starting with punctuation."""
    lines: list[str] = []
    line = ""
    for character in text:
        if line and pdf.get_string_width(line + character) > width:
            # Break after the line's last punctuation if it is near the end, else before a
            # character that may begin a line (taking the previous character down with it).
            cut = max((i + 1 for i, c in enumerate(line) if c in _NO_LINE_START), default=0)
            if cut < len(line) - _PUNCTUATION_REACH:
                cut = len(line) - 1 if character in _NO_LINE_START and len(line) > 1 else len(line)
            lines.append(line[:cut])
            line = line[cut:]
        line += character
    return [*lines, line] if line else lines


def _fitting_size(pdf: FPDF, text: str, style: str, size: float, width: float) -> float:
    """``size`` in points, or smaller (in half points) so that ``text`` fits ``width`` mm."""
    while size > 5:
        pdf.set_font("card", style, size)
        if pdf.get_string_width(text) <= width:
            break
        size -= 0.5
    return size


def _first_usable(candidates: tuple[KnownFont, ...]) -> CardFont | None:
    for known in candidates:
        if not known.path.is_file():
            continue
        index = _face_index(known.path, known.face)
        if index is not None and _has_glyphs(known.path, index):
            return CardFont(known.path, index)
    return None


def _fontconfig_font(pattern: str) -> CardFont | None:
    """fontconfig's best match for ``pattern`` among the fonts with every glyph the card needs."""
    if not FC_MATCH or not (command := shutil.which(FC_MATCH)):
        return None
    try:
        listing = subprocess.run(
            [command, "--sort", "--format", "%{file}\t%{index}\n", pattern],
            capture_output=True, text=True, timeout=20, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in listing.splitlines():
        path, _, index = line.partition("\t")
        font_file = path.lower().endswith((".ttf", ".otf", ".ttc", ".otc"))
        if font_file and index.isdigit() and _has_glyphs(Path(path), int(index)):
            return CardFont(Path(path), int(index))
    return None


def _face_index(path: Path, face: str | None) -> int | None:
    """The index of the face named ``face`` in a collection; 0 for a single font."""
    if face is None:
        return 0
    try:
        if path.suffix.lower() not in (".ttc", ".otc"):
            return 0
        with TTCollection(str(path), lazy=True) as collection:
            for index, font in enumerate(collection.fonts):
                if font["name"].getDebugName(1) == face:
                    return index
    except (OSError, TTLibError):
        return None
    return None


@cache
def _has_glyphs(path: Path, index: int) -> bool:
    try:
        with TTFont(str(path), fontNumber=index, lazy=True) as font:
            cmap = font.getBestCmap() or {}
    except (OSError, TTLibError, KeyError):
        return False
    return all(ord(character) in cmap for character in set(_FIXED_TEXT) if not character.isspace())
