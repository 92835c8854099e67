"""``--endpoint local``: a deterministic writer that answers every prompt from the facts alone.

It fills the same JSON schemas an LLM fills, so the reply goes through the same parser, validation,
cache and report, and everything downstream (SCIO, instruction building, the demo) runs with no
network. It states only what the annotations say (counts, categories, positions, sizes from boxes and
resolution, land-cover shares) plus fixed SAR knowledge per category and land cover (how each
scatters); it never sees pixels. Same facts, same reply, byte for byte: no randomness beyond a
generator seeded by the sample id (used only to pick dialogue questions).
"""

from __future__ import annotations

import json
import random
import re
import zlib
from typing import Any

from sarvlm.annotate.facts import Facts, ObjectGroup
from sarvlm.annotate.templates import PromptTemplate, source_captions
from sarvlm.annotate.vocabulary import COLOUR_RE, plural

MODEL_NAME = "sarvlm-offline-writer"

_NUMBER = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_REGION = {"center": "in the center", "left": "on the left", "right": "on the right", "top": "at the top"}
_REGION["bottom"] = "at the bottom"
# How targets look in SAR (FUSAR-KLIP §3.2's "SAR theoretical knowledge layer").
_SCATTERING = {
    "ship": "elongated strong-scattering hulls with bright points at the superstructure",
    "aircraft": "cross-shaped clusters of strong scattering points from fuselage and wings",
    "car": "small bright point-like returns",
    "tank": "circular bright rims with a darker interior",
    "bridge": "bright linear strong-scattering structures crossing the water",
    "harbor": "bright linear piers and breakwaters along the shore",
}
_TEXTURE = {
    "water": "dark, smooth, low backscatter",
    "urban": "bright, rectilinear strong backscatter from buildings",
    "farmland": "parcels of differing medium backscatter",
    "forest": "uniform medium backscatter with a grainy texture",
    "grassland": "uniform low-to-medium backscatter",
    "bare": "low, fairly homogeneous backscatter",
    "runway": "dark straight strips",
}
_TERRAIN = {
    "water": "water-dominated area",
    "urban": "urbanized flatland",
    "farmland": "agricultural plain",
    "forest": "forested area",
    "grassland": "grassland plain",
    "bare": "bare land",
    "runway": "airfield",
}
_FUNCTION_BY_SCENE = {
    "port": "port and shipping area",
    "coast": "coastal area",
    "river": "riverside area",
    "airport": "airport and aviation area",
    "rural": "rural agricultural area",
}
_FUNCTION_BY_COVER = {
    "water": "water body and shipping area",
    "urban": "urban residential and industrial area",
    "farmland": "agricultural production area",
    "forest": "forest and ecological area",
    "grassland": "grassland and pasture area",
    "bare": "undeveloped land",
    "runway": "airport and aviation area",
}


def _num(n: int) -> str:
    return _NUMBER[n] if 0 <= n < len(_NUMBER) else str(n)


def _noun(g: ObjectGroup) -> str:
    return g.category if g.count == 1 else plural(g.category)


def _join(parts: list[str]) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%"


def _covers(f: Facts, min_share: float = 0.05) -> list[tuple[str, float]]:
    return [(k, v) for k, v in sorted((f.landcover or {}).items(), key=lambda kv: (-kv[1], kv[0])) if v >= min_share]


# -- target fields (FUSAR-KLIP Fig. 8(c)/(d)) ---------------------------------------------------------


def _target_fields(f: Facts, groups: list[ObjectGroup]) -> dict[str, str]:
    count = _join([f"{_num(g.count)} {_noun(g)}" for g in groups])
    location = "; ".join(f"{_noun(g)} {_REGION[g.main_region]}" for g in groups)
    feature = "; ".join(
        f"{_noun(g)}: {_SCATTERING.get(g.category, 'compact strong-scattering returns')}" for g in groups
    )
    sizes = []
    for g in groups:
        if g.length_m:
            lo, hi = g.length_m
            span = f"about {lo:.0f} m" if round(lo) == round(hi) else f"{lo:.0f}-{hi:.0f} m"
            sizes.append(f"{_noun(g)} {span} long")
    size = (
        "; ".join(sizes) + f" (from the box sizes at {f.resolution_m:g} m resolution)"
        if sizes
        else "not estimated (resolution unknown)"
    )
    category = "; ".join(
        g.category + (" (" + ", ".join(f"{n} {k}" for k, n in g.fine.items()) + ")" if g.fine else "") for g in groups
    )
    dist = []
    for g in groups:
        if g.count == 1:
            dist.append(f"a single {g.category}")
        elif len(g.cells) <= 2:
            dist.append(f"{plural(g.category)} clustered in {len(g.cells)} of the 9 grid cells")
        else:
            dist.append(f"{plural(g.category)} dispersed over {len(g.cells)} of the 9 grid cells")
    covers = _covers(f)
    dominant = f.dominant_landcover()
    region = (
        f"within an area dominated by {dominant} ({_pct(f.landcover[dominant])})" if dominant else "unknown surface"
    )
    env = (
        "the surroundings are " + _join([f"{k} ({_pct(v)})" for k, v in covers])
        if covers
        else "no land-cover annotation"
    )
    return {
        "Count": count,
        "Location": location,
        "Feature": feature,
        "Size": size,
        "Category": category,
        "Distribution": "; ".join(dist),
        "Region": region,
        "Environment": env,
    }


# -- terrain fields (FUSAR-GEOVL, Fig. 8(e)) ------------------------------------------------------------


def _terrain_fields(f: Facts, sentences: bool) -> dict[str, str]:
    covers = _covers(f) or sorted((f.landcover or {}).items(), key=lambda kv: (-kv[1], kv[0]))[:1]
    lc = f.landcover or {}
    dominant = covers[0][0] if covers else None
    terrain = _TERRAIN.get(dominant or "", dominant or "unclassified area")
    if len(covers) > 1:
        terrain += " with " + _join([k for k, _ in covers[1:3]])
    function = _FUNCTION_BY_SCENE.get(f.scene or "") or _FUNCTION_BY_COVER.get(dominant or "", "mixed-use area")
    shares = _join([f"{k} {_pct(v)}" for k, v in covers])
    targets = "; ".join(f"{_num(g.count)} {_noun(g)} {_REGION[g.main_region]}" for g in f.objects)
    distribution = f"land cover: {shares}" + (f"; {targets}" if targets else "")
    layout = (
        f"mixed layout of {len(covers)} land-cover classes" if len(covers) > 1 else "homogeneous single-class layout"
    )
    boundary = (
        f"boundaries between {covers[0][0]} and {covers[1][0]}"
        if len(covers) > 1
        else "no distinct boundaries between land covers"
    )
    urban = lc.get("urban", 0.0)
    if urban >= 0.2:
        buildings = f"dense built-up blocks covering about {_pct(urban)} of the image"
    elif urban > 0:
        buildings = f"scattered buildings covering about {_pct(urban)} of the image"
    else:
        buildings = "no buildings"
    cars = f.group("car")
    if cars is not None:
        roads = f"roads with {_num(cars.count)} {_noun(cars)}"
    elif urban > 0:
        roads = "roads within the built-up areas"
    else:
        roads = "no clear roads"
    water_share = lc.get("water", 0.0)
    if water_share > 0:
        water = f"water covers about {_pct(water_share)} of the image"
        on_water = [g for g in f.objects if g.category in ("ship", "bridge", "harbor")]
        if on_water:
            water += " with " + _join([f"{_num(g.count)} {_noun(g)}" for g in on_water])
    else:
        water = "none"
    fields = {
        "Terrain": terrain,
        "Functionality": function,
        "Distribution": distribution,
        "Layout": layout,
        "Boundary": boundary,
        "Buildings": buildings,
        "Roads": roads,
        "Water": water,
    }
    if sentences:  # FUSAR-GEOVL-1M's released texts: each field one sentence
        fields = {
            "Terrain": f"The terrain is classified as {terrain}.",
            "Functionality": f"The area functionality is described as {function}.",
            "Distribution": f"The distribution is {distribution}.",
            "Layout": f"The layout is a {layout}.",
            "Boundary": f"The boundary shows {boundary}.",
            "Buildings": f"The buildings are {buildings}."
            if buildings != "no buildings"
            else "There are no buildings.",
            "Roads": f"The roads are {roads}." if roads != "no clear roads" else "There are no clear roads.",
            "Water": f"The water body: {water}." if water != "none" else "There is no water.",
        }
    return fields


def _place_text(f: Facts) -> str:
    if not f.place:
        return "an unlocated area"
    name = f.place.get("name")
    if "lon" in f.place:
        where = f"lon {f.place['lon']:.2f}, lat {f.place['lat']:.2f}"
        return f"{name} ({where})" if name else where
    return str(name)


def _sensor_text(f: Facts) -> str:
    parts = [f"{f.resolution_m:g} m" if f.resolution_m else None, f"{f.band}-band" if f.band else None]
    parts.append("/".join(f.polarizations) or None)
    return " ".join(p for p in parts if p) + " SAR" if any(parts) else "SAR"


def _knowledge_chain(f: Facts, groups: list[ObjectGroup]) -> dict[str, str]:
    covers = _covers(f)
    year = f" in {f.year}" if f.year else ""
    scene = f"a {f.scene} scene" if f.scene else "the imaged area"
    return {
        "earth_cognition": f"The image covers {scene} at {_place_text(f)}, acquired{year or ' (date unknown)'}.",
        "social_prior": (
            "Land use is " + _join([f"{k} ({_pct(v)})" for k, v in covers]) + "."
            if covers
            else "No land-use annotation is available."
        ),
        "sar_theory": " ".join(
            [f"{k.capitalize()} shows {_TEXTURE.get(k, 'mixed backscatter')}." for k, _ in covers[:3]]
            + [
                f"{plural(g.category).capitalize()} appear as {_SCATTERING.get(g.category, 'bright returns')}."
                for g in groups
            ]
        )
        or "No scattering knowledge applies.",
        "instance_discrimination": (
            "The annotations list " + _join([f"{_num(g.count)} {_noun(g)}" for g in groups]) + "."
            if groups
            else "No targets are annotated."
        ),
        "calibration": "Every statement above is taken from the annotations of this image.",
    }


def _multiscale(f: Facts, fields: dict[str, str]) -> dict[str, str]:
    return {
        "large_scale": f"{_sensor_text(f)} image of {_place_text(f)}: {fields['Terrain'].lower()}",
        "medium_scale": f"{fields['Distribution']} {fields['Layout']}",
        "small_scale": " ".join(
            [
                f"{_num(g.count).capitalize()} {_noun(g)}: {_SCATTERING.get(g.category, 'bright returns')}."
                for g in f.objects
            ]
        )
        or "No individual targets are annotated.",
    }


def _lunaros(f: Facts) -> dict[str, str]:
    covers = _covers(f)
    classes = _join([k for k, _ in covers]) or "unclassified surface"
    morph = _join([f"{k} ({_pct(v)})" for k, v in covers]) or "no land-cover annotation"
    back = "; ".join(f"{k}: {_TEXTURE.get(k, 'mixed backscatter')}" for k, _ in covers)
    targets = [f"{_num(g.count)} {_noun(g)} {_REGION[g.main_region]}" for g in f.objects]
    if targets:
        back += ("; " if back else "") + "strong point scattering from " + _join(targets)
    corr = (
        f"The dark smooth SAR areas match the {covers[0][0]} in the optical image"
        if covers and covers[0][0] == "water"
        else "Bright SAR textures match built structures and rough surfaces in the optical image"
    )
    caption = f"The scene is mainly {classes}. The optical image shows {morph}. In the SAR image, {back or 'textures are uniform'}."
    if targets:
        caption += " There " + ("is " if f.objects[0].count == 1 else "are ") + _join(targets) + "."
    return {
        "geomorphic_class": classes,
        "optical_morphology": morph,
        "sar_backscatter": back or "uniform backscatter",
        "cross_modal_correlation": corr + ".",
        "caption": caption,
    }


def strip_colour_words(text: str) -> tuple[str, list[str]]:
    """Text without colour words (and the words removed), SARLANG-1M §3.3's correction done by rule."""
    removed = [m.group(0).lower() for m in COLOUR_RE.finditer(text)]
    out = COLOUR_RE.sub("", text)
    out = re.sub(r"\s+([,.;])", r"\1", re.sub(r"\s{2,}", " ", out)).strip()
    out = re.sub(r"\b(a|an)\s+(?=[aeiou])", lambda m: "an " if m.group(1).lower() == "a" else m.group(0), out)
    return out, removed


def _transfer(f: Facts) -> dict[str, Any]:
    caps = sorted(source_captions(f), key=lambda c: (len(c.text), c.text))
    concise, r1 = strip_colour_words(caps[0].text)
    concise = re.split(r"(?<=[.!?])\s+", concise)[0]
    complex_parts, removed = [], list(r1)
    for c in caps[::-1][:3]:
        t, r = strip_colour_words(c.text)
        complex_parts.append(t)
        removed += r
    return {
        "concise": concise,
        "complex": " ".join(dict.fromkeys(complex_parts)),
        "removed_colour_words": sorted(set(removed)),
    }


def _dialogue(f: Facts) -> dict[str, Any]:
    from sarvlm.tasks.dialogue import FIELD_QUESTIONS, OVERVIEW_QUESTION, sentences

    rng = random.Random(zlib.crc32(f.sample_id.encode("utf-8")))
    caps = sorted(source_captions(f), key=lambda c: (-len(c.text), c.text))
    pairs: list[tuple[str, str]] = []
    sents = sentences(caps[0].text) if caps else []
    if len(sents) >= 3:
        rest = sorted(rng.sample(range(1, len(sents)), 2))
        pairs = [(OVERVIEW_QUESTION, sents[0])]
        asked = ["What does the radar backscatter reveal in this scene?", "What other details can be observed?"]
        for i, q in zip(rest, asked):
            s = sents[i]
            if re.search(r"\b(left|right|top|bottom|center|upper|lower)\b", s, re.I):
                q = FIELD_QUESTIONS["location"]
            pairs.append((q, s))
    else:
        pairs = [(OVERVIEW_QUESTION, " ".join(sents) or "A SAR image.")]
        if f.objects:
            pairs.append(
                (
                    "Which targets are annotated, and how many?",
                    "There "
                    + ("is " if f.objects[0].count == 1 else "are ")
                    + _join([f"{_num(g.count)} {_noun(g)}" for g in f.objects])
                    + ".",
                )
            )
        if f.landcover:
            pairs.append(
                (
                    FIELD_QUESTIONS["terrain"],
                    "The land cover is " + _join([f"{k} ({_pct(v)})" for k, v in _covers(f)]) + ".",
                )
            )
        if len(pairs) < 3:
            pairs.append(("Where are the main features located in the image?", _target_location_sentence(f)))
        pairs = pairs[:3]
    return {"turns": [{"question": q, "answer": a} for q, a in pairs]}


def _target_location_sentence(f: Facts) -> str:
    if not f.objects:
        return "No targets are annotated in this image."
    return "The " + _join([f"{_noun(g)} lie {_REGION[g.main_region]}" for g in f.objects]) + "."


def offline_answer(template: PromptTemplate, facts: Facts) -> dict[str, Any]:
    """The writer's answer to ``template`` for ``facts`` as a dict in the template's schema."""
    groups = template.relevant_objects(facts)
    kind = template.output["kind"]
    if kind == "dialogue":
        return _dialogue(facts)
    if kind == "captions":
        return _transfer(facts)
    if template.id == "lunaros" or "caption" in template.fields:
        ans = _lunaros(facts)
        return {k: ans.get(k, "") for k in template.fields}
    if "Count" in template.fields:
        fields = _target_fields(facts, groups)
        chain = _knowledge_chain(facts, groups)
    else:
        sentences = template.id == "geovl"
        fields = _terrain_fields(facts, sentences)
        chain = (
            _multiscale(facts, fields)
            if set(template.reasoning) >= {"large_scale"}
            else _knowledge_chain(facts, groups)
        )
    out_fields = {k: fields.get(k, "unknown") for k in template.fields}
    if not template.reasoning:
        return out_fields
    return {"reasoning": {k: chain.get(k, "") for k in template.reasoning}, "fields": out_fields}


def offline_reply(template: PromptTemplate, facts: Facts) -> str:
    """The answer as the JSON text a model would send (sorted keys: byte-stable)."""
    return json.dumps(offline_answer(template, facts), ensure_ascii=False, sort_keys=True)
