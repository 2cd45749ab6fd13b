"""The status page's last hour (issue 10 item 6) on the real stack: Apache + mod_fcgid + php-cgi and the
OpenVZ beancounter double.

The sampler records every sample into its history and draws it on the HTML page as three inline SVG
charts and a sentence. Here: the SVGs are there and well-formed XML (each parsed on its own), show
the binding limit's name and the same headroom, used and limit as ?json, count refusals that really
happened, and nothing of them shows in ?auto, ?json or ?metrics.
"""

import json
import re
import time
import xml.etree.ElementTree as ET

import harness  # noqa: F401  (the conftest's server fixture uses it)

CONF = ("ShmGuardBeancounters ${SHMGUARD_UBC_FILE}\nShmGuardInterval 200ms\nShmGuardReserve 64M\n"
        "<Location /shmguard-status>\nSetHandler shmguard-status\nShmGuardStatusPage On\n</Location>")
SVG = "{http://www.w3.org/2000/svg}"
REFUSED_COLOUR = "#d2691e"
HEADROOM_COLOUR = "#2e8b57"


def human(n):
    """core's human_bytes: binary units, one decimal above bytes."""
    if n < 1024:
        return "%d B" % n
    v, units = float(n), ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    u = -1
    while v >= 1024.0 and u < 5:
        v /= 1024.0
        u += 1
    return "%.1f %s" % (v, units[u])


def get_json(s):
    r = s.get("/shmguard-status?json")
    assert r.status == 200, r
    return json.loads(r.body)


def history_section(s):
    """(the section's HTML, [parsed <svg> elements]) from the HTML page."""
    r = s.get("/shmguard-status")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    page = r.text
    m = re.search(r'<h2 id="history">.*?(?=<h2 )', page, re.S)
    assert m, "no history section in the page:\n" + page[:3000]
    section = m.group(0)
    svgs = re.findall(r"<svg\b.*?</svg>", section, re.S)
    parsed = []
    for text in svgs:
        try:
            parsed.append(ET.fromstring(text))
        except ET.ParseError as e:  # the fragment is not well-formed XML
            raise AssertionError("%s in\n%s" % (e, text))
    return section, parsed


def svg_text(el):
    return " ".join(t.strip() for t in el.itertext() if t.strip())


def bars(el, colour):
    """The chart's bars of one colour (the key's 9x9 square left out)."""
    return [r for r in el.iter(SVG + "rect") if r.get("fill") == colour and r.get("width") != "9"]


def wait_stable(s, timeout=10.0):
    """Waits for a few samples and a headroom that two ?json reads agree on; returns the doc."""
    deadline = time.monotonic() + timeout
    prev = None
    while True:
        doc = get_json(s)
        if doc.get("headroom_bytes") is not None and doc["sampler"]["samples"] >= 5:
            if prev is not None and prev["headroom_bytes"] == doc["headroom_bytes"]:
                return doc
            prev = doc
        assert time.monotonic() < deadline, "no stable headroom: %r" % doc.get("headroom_bytes")
        time.sleep(0.3)


def binding_limit(doc):
    (lim,) = [l for l in doc["limits"] if l["name"] == doc["binding"]]
    return lim


def test_chart_is_well_formed_svg_with_the_binding_limit_and_json_values(server):
    s = server(shmguard=True, shmguard_conf=CONF)
    assert s.get("/index.php").status == 200  # one php-cgi worker: 64 MiB of the 1 GiB shmpages
    s.wait_workers(1)
    doc = wait_stable(s)
    section, svgs = history_section(s)
    after = get_json(s)
    assert after["headroom_bytes"] == doc["headroom_bytes"], "the budget moved during the test"

    assert len(svgs) == 3, section
    for el in svgs:
        assert el.tag == SVG + "svg" and el.get("role") == "img"
        assert el.find(SVG + "title") is not None and el.find(SVG + "desc") is not None
        # Nothing that runs or loads: no script, link, image or foreign HTML.
        tags = {c.tag.replace(SVG, "") for c in el.iter()}
        assert not tags & {"script", "a", "image", "foreignObject", "style", "use"}, tags
        assert not any(k.startswith("on") or "href" in k for c in el.iter() for k in c.attrib)
    headroom_svg, limit_svg, refusals_svg = svgs

    h = doc["headroom_bytes"]
    lim = binding_limit(doc)
    assert doc["binding"] == "beancounter:shmpages"
    assert lim["limit_bytes"] == 262144 * 4096 and lim["used_bytes"] == 16384 * 4096
    # The headroom chart's key and the sentence say the headroom ?json says, in human bytes; the
    # binding limit's chart is named after it and its description carries used and limit.
    assert "now " + human(h) in svg_text(headroom_svg), svg_text(headroom_svg)
    assert len(bars(headroom_svg, HEADROOM_COLOUR)) >= 1
    assert "beancounter:shmpages" in svg_text(limit_svg)
    assert "%s of %s used now" % (human(lim["used_bytes"]), human(lim["limit_bytes"])) in svg_text(limit_svg)
    assert limit_svg.find(SVG + "path") is not None  # the limit's line
    sentence = re.search(r"<p>(Last hour .*?)</p>", section).group(1)
    assert ("headroom now %s, lowest %s (now); beancounter:shmpages %s of %s used; 0 requests refused, "
            "0 backend 500s translated to 503." % (human(h), human(h), human(lim["used_bytes"]),
                                                   human(lim["limit_bytes"]))) in sentence, sentence
    # Axis labels in human bytes: 960 MiB of headroom at most -> the axis goes to 1.0 GiB.
    assert "1.0 GiB" in svg_text(headroom_svg) and "512.0 MiB" in svg_text(headroom_svg)
    assert "refused 0" in svg_text(refusals_svg) and bars(refusals_svg, REFUSED_COLOUR) == []

    # The other formats carry none of it.
    for q in ("auto", "json", "metrics"):
        r = s.get("/shmguard-status?" + q)
        assert r.status == 200
        assert "<svg" not in r.text and "shmguard-history" not in r.text and "Last hour" not in r.text, q
    # The page links and loads nothing for the chart; mod_status's section does not include it.
    r = s.get("/server-status")
    assert r.status == 200 and "<svg" not in r.text


def test_refusals_show_in_the_chart(server):
    s = server(shmguard=True, shmguard_conf=CONF)
    wait_stable(s)
    # Exhausted: 1000 pages of shmpages left, below the 64 MiB reserve; no worker runs, so each
    # request to PHP is refused before a worker is started.
    s.budget.refresh()
    s.budget.set_barrier(s.budget.held() + 1000)
    deadline = time.monotonic() + 10
    while get_json(s).get("headroom_bytes") != 1000 * 4096:
        assert time.monotonic() < deadline, "the sampler never saw the exhausted budget"
        time.sleep(0.1)
    for _ in range(3):
        assert s.get("/index.php").status == 503
    assert get_json(s)["vhosts"][0]["refused"] == 3
    # The next sample records them.
    deadline = time.monotonic() + 10
    while True:
        section, svgs = history_section(s)
        if "refused 3" in svg_text(svgs[2]):
            break
        assert time.monotonic() < deadline, section
        time.sleep(0.2)
    refusals = svgs[2]
    assert len(bars(refusals, REFUSED_COLOUR)) >= 1  # in one minute, or two if it turned meanwhile
    assert "3 requests refused, 0 backend 500s translated to 503." in section
    # The headroom chart shows the exhausted budget and the lowest headroom the window saw.
    assert "now " + human(1000 * 4096) in svg_text(svgs[0])
    assert "lowest %s (now)" % human(1000 * 4096) in section
