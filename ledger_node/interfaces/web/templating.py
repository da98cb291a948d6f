"""Pages from Jinja2 templates, in Japanese or English, times in JST.

Labels are gettext messages (``{% trans %}`` and ``_()`` in the templates); the Japanese
catalog is `locale/ja/LC_MESSAGES/messages.po`, read with Babel when the node starts (no
compiled files to keep in step). English is the message ids themselves. The reader's
language is the ``mlg_lang`` cookie, else Japanese: the operators work in Japanese.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

HERE = Path(__file__).parent
LANGUAGES = ("ja", "en")
DEFAULT_LANGUAGE = "ja"
LANG_COOKIE = "mlg_lang"
JST = dt.timezone(dt.timedelta(hours=9), "JST")
"""Japan Standard Time, UTC+9 all year (no daylight saving)."""


def translations(lang: str) -> gettext.NullTranslations:
    """The catalog of `lang` (English: the message ids)."""
    po = HERE / "locale" / lang / "LC_MESSAGES" / "messages.po"
    if lang == "en" or not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def jst(t: float | None, fmt: str = "%Y/%m/%d %H:%M") -> str:
    """UTC seconds as JST text ("" for None)."""
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(t, JST).strftime(fmt)


def slot_span(start: int, length_s: int) -> str:
    """A slot's boundaries in JST: "00:00–00:01" (the end is the next slot's start)."""
    return f"{jst(start, '%H:%M')}–{jst(start + length_s, '%H:%M')}"


def kwh(wh: int | None, digits: int = 3) -> str:
    """Wh as kWh text ("" for None)."""
    return "" if wh is None else f"{wh / 1000:,.{digits}f}"


@cache
def environment(lang: str) -> jinja2.Environment:
    """The templates, rendering in `lang`."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(jst=jst, kwh=kwh, slot_span=slot_span)
    env.globals.update(LANGUAGES=LANGUAGES)
    return env


def language(cookies: Mapping[str, str], query: Mapping[str, str]) -> str:
    """The reader's language: ``?lang=``, else the cookie, else Japanese."""
    for lang in (query.get("lang"), cookies.get(LANG_COOKIE)):
        if lang in LANGUAGES:
            return str(lang)
    return DEFAULT_LANGUAGE


def render(lang: str, template: str, values: Mapping[str, Any]) -> str:
    return environment(lang).get_template(template).render(**values, lang=lang)
