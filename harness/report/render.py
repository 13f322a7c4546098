"""Rendering the report: jinja2 templates (autoescaped, overridable) into one offline HTML file.

Templates are looked up in this order: the user's folder (``--templates DIR``), the folders
plugins register through ``register_report_templates``, then the defaults, which stay reachable
as ``default:NAME`` so an override can ``{% extends "default:report.html" %}``. Inline scripts
are pulled in with ``{{ inline_script("static/report.js") }}``: their sha256 hashes go into the
page's Content-Security-Policy, which forbids every other script and every external load.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

DEFAULT_TEMPLATES = Path(__file__).parent / "templates"
REPORT_FILE = "report.html"


def script_json(data: Any) -> Markup:
    """JSON safe inside a ``<script type="application/json">``: no ``</script>``, no ``<!--``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return Markup(text)


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _secs(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def _cost(value: float | None) -> str:
    return "–" if value is None else f"${value:.4f}"


def _jsontext(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def environment(templates: str | Path | None = None,
                extra_dirs: Iterable[str | Path] = ()) -> jinja2.Environment:
    """The jinja2 environment: autoescape on, user folder, plugin folders, then defaults."""
    default = jinja2.FileSystemLoader(str(DEFAULT_TEMPLATES))
    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        if not Path(templates).is_dir():
            raise FileNotFoundError(f"templates folder not found: {templates}")
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders += [jinja2.FileSystemLoader(str(p)) for p in extra_dirs]
    loaders += [default, jinja2.PrefixLoader({"default": default}, delimiter=":")]
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(pct=_pct, num=_num, secs=_secs, cost=_cost, script_json=script_json,
                       jsontext=_jsontext)
    return env


def render(template_name: str, context: dict[str, Any], *,
           templates: str | Path | None = None, extra_dirs: Iterable[str | Path] = ()) -> str:
    """Render a page; the CSP lists the hashes of the scripts the page inlined."""
    env = environment(templates, extra_dirs)
    hashes: list[str] = []
    placeholder = f"csp-script-hashes-{secrets.token_hex(16)}"

    def inline_script(name: str) -> Markup:
        assert env.loader is not None
        source = env.loader.get_source(env, name)[0]
        if "</script" in source.lower():
            raise ValueError(f"{name} contains </script")
        digest = base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
        return Markup(f"<script>{source}</script>")

    def inline_style(name: str) -> Markup:
        assert env.loader is not None
        source = env.loader.get_source(env, name)[0]
        if "</style" in source.lower():
            raise ValueError(f"{name} contains </style")
        return Markup(f"<style>{source}</style>")

    page = env.get_template(template_name).render(
        **context, inline_script=inline_script, inline_style=inline_style,
        csp_script_hashes=Markup(placeholder))
    if placeholder not in page:
        raise ValueError(f"{template_name} has no Content-Security-Policy "
                         "(use the `csp` block of default:report.html)")
    return page.replace(placeholder, " ".join(hashes) or "'none'", 1)


def write_report(run_dir: str | Path, out: str | Path | None = None, *,
                 sample: int | None = None, templates: str | Path | None = None,
                 extra_dirs: Iterable[str | Path] | None = None) -> Path:
    """Build the HTML report of a run directory (``RUN_DIR/report.html`` by default).

    ``extra_dirs`` are the plugins' template folders (default: the registry's).
    """
    from harness.report.data import DEFAULT_SAMPLE, collect

    if extra_dirs is None:
        from harness.plugins import get_registry

        extra_dirs = get_registry().report_templates
    data = collect(run_dir, sample=DEFAULT_SAMPLE if sample is None else sample)
    page = render(REPORT_FILE, {"data": data}, templates=templates, extra_dirs=extra_dirs)
    out_path = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out_path)
    return out_path
