"""`GET /` through Flask's client: the page, its assets served by the app, no
address elsewhere, and every asset shipped in the wheel with its licence.
(The browser tests are in test_e2e_dashboard.py.)"""

import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path

from bankapp.web import dashboard

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "bankapp" / "web"
#: Strings that look like addresses but fetch nothing: the SVG namespace, and uPlot's banner comment.
NOT_FETCHED = {"http://www.w3.org/2000/svg", "https://github.com/leeoniya/uPlot"}


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        self.found += [value for name, value in attrs if name in {"src", "href"}]


def links(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.found


def test_the_page_and_every_asset_it_names_are_served_by_the_app(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    found = links(response.get_data(as_text=True))
    assert any("uPlot.iife.min.js" in link for link in found) and any("dashboard.js" in link for link in found)
    for link in found:
        if link.startswith("data:"):
            continue
        assert link.startswith("/static/"), link
        asset = client.get(link)
        assert asset.status_code == 200, link
        asset.close()


def test_the_page_and_its_script_name_no_address_elsewhere():
    for path in [*(WEB / "static").rglob("*.*"), *(WEB / "templates").rglob("*.html")]:
        if path.suffix in {".js", ".css", ".html"}:
            addresses = set(re.findall(r"https?://[^\"'\s)]+", path.read_text()))
            assert addresses <= NOT_FETCHED, path


def test_the_controls_offer_what_the_settings_accept(client):
    html = client.get("/").get_data(as_text=True)
    for setting in ("deposit_guard", "checkout_guard", "transfer_policy"):
        block = html.split(f'data-setting="{setting}"', 1)[1].split("</fieldset>", 1)[0]
        assert re.findall(r'data-value="([^"]+)"', block) == list(dashboard.choices(setting))


def test_each_vendored_library_is_pinned_with_its_licence():
    vendored = sorted((WEB / "static" / "vendor").iterdir())
    assert vendored
    for folder in vendored:
        name, _, version = folder.name.rpartition("-")
        assert name and re.fullmatch(r"\d+\.\d+\.\d+", version), folder.name
        assert (folder / "LICENSE").read_text().strip()
    banner = (WEB / "static" / dashboard.UPLOT / "uPlot.iife.min.js").read_text()[:100]
    assert f"(v{dashboard.UPLOT.rpartition('-')[2]})" in banner


def test_every_asset_is_in_the_package_data_so_the_wheel_has_it():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bankapp.web"]
    for path in [*(WEB / "static").rglob("*"), *(WEB / "templates").rglob("*")]:
        if path.is_file():
            relative = path.relative_to(WEB)
            shipped = [glob for glob in globs if relative.match(glob) and len(relative.parts) == len(Path(glob).parts)]
            assert shipped, f"{relative} is not in [tool.setuptools.package-data]"


def test_both_routes_are_in_the_openapi_document_with_their_media_types(client):
    paths = client.get("/openapi.json").json["paths"]
    assert "text/html" in paths["/"]["get"]["responses"]["200"]["content"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
