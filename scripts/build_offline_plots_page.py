"""Writes .dvc/plots/offline.html: DVC's plots page with vega's scripts inline, so that
`dvc plots show` and `dvc plots diff` draw every chart with no network (.dvc/config points DVC at it).

    npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2   # the versions DVC's own page loads from a CDN
    for f in *.tgz; do tar xzf $f --strip-components=2 --wildcards 'package/build/*.min.js'; done
    python scripts/build_offline_plots_page.py FOLDER_WITH_THE_MIN_JS
"""

import sys
from pathlib import Path

from dvc_render.html import PAGE_HTML

SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")  # in this order: each needs the one before
PAGE = Path(__file__).resolve().parents[1] / ".dvc/plots/offline.html"

folder = Path(sys.argv[1])
inline = "\n".join(
    f"<script>/* {name}, BSD-3-Clause, vega.github.io */\n{(folder / name).read_text()}\n</script>" for name in SCRIPTS
)
# no {scripts} left: DVC would fill it with the CDN links
page = PAGE_HTML.replace("{scripts}", inline)
if any(placeholder in inline for placeholder in ("{plot_divs}", "{refresh_tag}", "{scripts}")):
    sys.exit("a script holds one of DVC's placeholders; DVC would replace it inside the script")
PAGE.parent.mkdir(exist_ok=True)
PAGE.write_text(page)
print(f"{PAGE}: {PAGE.stat().st_size / 1e6:.2f} MB")
