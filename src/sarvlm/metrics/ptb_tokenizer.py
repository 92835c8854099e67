"""A pure-Python reproduction of pycocoevalcap's PTB tokenizer (no Java).

pycocoevalcap 1.2 tokenizes captions by running Stanford CoreNLP 3.4.1's
``PTBTokenizer -preserveLines -lowerCase`` in a JVM, then drops the tokens in its
``PUNCTUATIONS`` list. Caption metrics (BLEU, CIDEr, ...) depend on every token, so
this module re-implements the lexer rules that matter for English captions with
JFlex semantics (longest match including trailing context; ties go to the earlier
rule), and the same punctuation removal:

- clitics split (``isn't`` -> ``is n't``, ``it's`` -> ``it 's``, ``cannot`` -> ``can not``,
  ``gonna`` -> ``gon na``), ``o'clock``/``rock 'n' roll``/``'90s`` kept;
- abbreviations and acronyms keep their period (``e.g.``, ``u.s.``, ``mr.``, ``etc.``), a
  word before a sentence period loses it; ``No.`` keeps it only before a number;
- numbers with ``.,:`` inside stay whole, ``50%`` -> ``50 %``, ``$5`` -> ``$ 5``, ``£`` -> ``#``;
- round/curly/square brackets become ``-lrb-``/``-rrb-``/``-lcb-``/``-rcb-``/``-lsb-``/``-rsb-``;
  only the upper-case forms are in pycocoevalcap's removal list, so the lower-cased
  tokens *stay* in the output, exactly as with Java;
- quotes become `` `` ``/``''``/`` ` ``/``'`` and are removed; dashes become ``--`` (removed);
  ``...``/``…`` become ``...`` (removed); hyphenated words and ``a/b`` stay whole.

``JavaPTBTokenizer`` (pycocoevalcap's own class) stays selectable for bit-exact
reference runs; tests compare both on a corpus of the tokenizer's edge cases.
Lines are independent here, whereas Java reads one file: pycocoevalcap's line
alignment breaks on captions containing ``\\r`` or other Unicode line separators,
which this module treats as spaces instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence

# pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS (compared after lower-casing, so
# the upper-case bracket forms never match: -lrb- and friends survive).
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)

_SPACE = "[ \t\u00a0\u2000-\u200a\u3000]"
_SPACE_CHARS = " \t\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u3000"
_NEWLINE_CHARS = "\r\n\u2028\u2029\u000b\u000c\u0085"


def _char_class(pred) -> str:
    """A regex character class of the BMP code points satisfying ``pred`` (Java's isLetter ~ str.isalpha)."""
    ranges, start, prev = [], None, None
    for cp in range(0x10000):
        if 0xD800 <= cp <= 0xDFFF or not pred(chr(cp)):
            continue
        if start is None:
            start = prev = cp
        elif cp == prev + 1:
            prev = cp
        else:
            ranges.append((start, prev))
            start = prev = cp
    if start is not None:
        ranges.append((start, prev))
    esc = lambda c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"  # noqa: E731
    return "[" + "".join(esc(a) if a == b else f"{esc(a)}-{esc(b)}" for a, b in ranges) + "]"


_ALPHA = _char_class(str.isalpha)
_ALNUM = _char_class(lambda c: c.isalpha() or c.isdecimal())
_LETTER = rf"(?:{_ALPHA}|&[aeiouAEIOU](?:acute|grave|uml);|[\u00ad\u0237-\u024f\u02c2-\u02c5\u02d2-\u02df\u02e5-\u02ff\u0300-\u036f])"
_DIGIT = r"\d"
_WORD = rf"{_LETTER}(?:{_LETTER}|{_DIGIT})*(?:[.!?]{_LETTER}(?:{_LETTER}|{_DIGIT})*)*"
_APOS = r"(?:['\u0092\u2019]|&apos;)"
_APOSETC = rf"(?:{_APOS}|[`\u0091\u2018\u201b])"
_REDAUX = rf"{_APOS}(?:[msdMSD]|(?i:re|ve|ll))"
_SWORD = r"[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*"
_SREDAUX = rf"(?i:n){_APOSETC}(?i:t)"
_APOWORD = (
    rf"{_APOS}(?i:n){_APOS}?|[lLdDjJ]{_APOS}|(?i:dunkin){_APOS}|(?i:somethin){_APOS}|(?i:ol){_APOS}"
    rf"|{_APOS}(?i:em)|(?i:diff){_APOSETC}(?i:rent)|[A-HJ-XZn]{_APOSETC}{_ALPHA}{{2}}{_ALPHA}*|{_APOS}[2-9]0(?i:s)"
    rf"|{_APOS}(?i:till?)|{_ALPHA}+[aeiouyAEIOUY]{_APOSETC}[aeiouA-Z]{_ALPHA}*|{_APOS}(?i:cause)"
    r"|(?i:cont'd\.?|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l)|O" + _APOSETC + "o"
)
_NUM = r"\d*(?:[.:,\u00ad\u066b\u066c]\d+)+|\d+"
_NUMBER = rf"[\-+]?(?:{_NUM})"
_HYPHEN = r"[\-_\u058a\u2010\u2011]"
_THING = rf"(?:[dDoOlL]{_APOSETC}{_ALNUM})?{_ALNUM}+(?:{_HYPHEN}(?:[dDoOlL]{_APOSETC}{_ALNUM})?{_ALNUM}+)*"
_ACRO = r"[A-Za-z](?:\.[A-Za-z])+|(?i:(?:canada|sino|korean|eu|japan|non)-u\.s|u\.s\.-(?:u\.k|u\.s\.s\.r))"
_ABMONTH = "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
_ABDAYS = "mon|tue|tues|wed|thu|thurs|fri"
_ABSTATE = (
    "ala|ariz|[A]z|[A]rk|calif|colo|conn|ct|dak|[D]el|fla|ga|[I]ll|ind|kans?|ky|[L]a|[M]ass|md|mich|minn"
    "|[M]iss|mo|mont|neb|nev|okla|[O]re|[P]a|penn|tenn|[T]ex|va|vt|[W]ash|wisc?|wyo"
)
_ABCOMP = "inc|cos?|corp|pp?t[ye]s?|ltd|plc|rt|bancorp|bhd|assn|univ|intl|sys"
_ABPTIT = r"jr|sr|bros|(?:ed|ph)\.d|blvd|rd|esq"
_ABBREV1 = rf"(?i:{_ABMONTH}|{_ABDAYS}|{_ABCOMP}|{_ABPTIT}|etc|al|seq)\.|(?:{_ABSTATE})\."
_ABTITLE = (
    r"mr|mrs|ms|[M]iss|drs?|profs?|sens?|reps?|attys?|lt|col|gen|messrs|govs?|adm|rev|maj|sgt|cpl|pvt"
    r"|capt|ste?|ave|pres|lieut|hon|brig|co?mdr|pfc|spc|supts?|det|mt|ft|st"
)
# Longer alternatives first: Python's alternation is first-match, JFlex's is longest-match.
_ABBREV4 = rf"{_ACRO}|(?i:a\.k\.a|{_ABTITLE}|vs|alex|wm|jos|cie|cf|treas|invt|elec|natl|m[ft]g|dept)|[A-Za-z]"
_ABBREV3 = r"(?i:ca|figs?|prop|nos?|art|bldg|prop|pp|op)\."
_SENT_WORDS = (
    "About|According|Additionally|After|An|A|As|At|But|Earlier|He|Her|Here|However|If|In|It|Last"
    "|Many|More|Mr\\.|Ms\\.|Now|Once|One|Other|Our|She|Since|So|Some|Such|That|The|Then|There|These"
    "|They|This|We|When|While|What|Yet|You"
)
_SGML = (
    r"<(?:[!?][A-Za-z\-][^>\r\n]*|[A-Za-z][A-Za-z0-9_:.\-]*(?:[ ]+(?:[A-Za-z][A-Za-z0-9_:.\-]*"
    r"|[A-Za-z][A-Za-z0-9_:.\-]*[ ]*=[ ]*(?:'[^'\r\n]*'|\"[^\"\r\n]*\"|[A-Za-z][A-Za-z0-9_:.\-]*)))*[ ]*/?"
    r"|/[A-Za-z][A-Za-z0-9_:.\-]*)[ ]*>"
)
_MISC = (
    "[\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00b3\u00b4-\u00ba\u00d7\u00f7\u0387\u05be\u05c0\u05c3"
    "\u05c6\u05f3\u05f4\u0600-\u0603\u0606-\u060a\u060c\u0614\u061b\u061e\u066a\u066d\u0703-\u070d\u07f6-\u07f8"
    "\u0964\u0965\u0e4f\u2020-\u2023\u2030-\u2038\u203b\u203c\u2043\u2044\u207a-\u207f\u208a-\u208e\u2100-\u214f"
    "\u2190-\u21ff\u2200-\u22ff\u2300-\u23ff\u25a0-\u25ff\u2600-\u26ff\u3012\u30fb\uff01-\uff0f\uff1a-\uff20"
    "\uff3b-\uff40\uff5b-\uff65]"
)


def _paren(tok: str) -> str:
    return tok.replace("(", "-LRB-").replace(")", "-RRB-")


def _brackets(tok: str) -> str:
    return (
        tok.replace("(", "-LRB-")
        .replace(")", "-RRB-")
        .replace("[", "-LSB-")
        .replace("]", "-RSB-")
        .replace("{", "-LCB-")
        .replace("}", "-RCB-")
    )


def _latex_quotes(tok: str, left: bool) -> str:
    if left:
        tok = re.sub(r"&apos;|'", "`", tok)
        tok = re.sub(r"\"|&quot;", "``", tok)
    else:
        tok = re.sub(r"&apos;|'", "'", tok)
        tok = re.sub(r"\"|&quot;", "''", tok)
    tok = re.sub("[\u0091\u2018\u201b\u2039]", "`", tok)
    tok = re.sub("[\u0092\u2019\u203a]", "'", tok)
    tok = re.sub("[\u0093\u201c\u00ab]", "``", tok)
    return re.sub("[\u0094\u201d\u00bb]", "''", tok)


def _currency(tok: str) -> str:
    return re.sub("[\u0080\u00a4\u20a0\u20ac]", "$", tok.replace("\u00a2", "cents").replace("\u00a3", "#"))


def _fractions(tok: str) -> str:
    for ch, rep in (("\u00bc", "1/4"), ("\u00bd", "1/2"), ("\u00be", "3/4"), ("\u2153", "1/3"), ("\u2154", "2/3")):
        tok = tok.replace(ch, rep)
    return tok


def _hyphens(tok: str) -> str:
    return "--" if 3 <= len(tok) <= 4 else tok


def _acronym(tok: str) -> str:
    # processAcronym: a one-letter acronym ("A.") before a sentence word loses its period.
    return tok[:-1] if len(tok) == 2 else tok


_KEEP = None
_DROP = "drop"
# (token pattern, trailing context or None, action). Order = JFlex rule order (ties).
_RULES_SRC: list[tuple[str, str | None, object]] = [
    (r"(?i:cannot|gimme|gonna|gotta|lemme|more'n|wanna)", None, "assim"),
    (_SGML, None, _KEEP),
    (r"&(?:MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015]", None, lambda t: "--"),
    (r"&amp;", None, lambda t: "&"),
    (r"&(?:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);", None, _KEEP),
    (_WORD, _REDAUX, _KEEP),
    (_SWORD, _SREDAUX, _KEEP),
    (_WORD, None, _KEEP),
    (_APOWORD, None, _KEEP),
    (rf"[yY]{_APOS}", _ALPHA, _KEEP),
    (
        r"(?:ftp|svn|svn\+ssh|http|https|mailto)://[^ \t\n\f\r\"<>|(){}\[\]]+[^ \t\n\f\r\"'<>|.!?(){},;:&\[\]\-]",
        None,
        _KEEP,
    ),
    (
        r"(?:(?:www\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})|(?:(?:[^ \t\n\f\r\"`'<>|.!?(){},\-_$]+\.)+(?:com|net|org|edu)))"
        r"(?:/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},\-])?",
        None,
        _KEEP,
    ),
    (r"(?:&lt;|<)?(?:mailto:)?[a-zA-Z0-9._%+\-]+@[A-Za-z0-9][A-Za-z0-9.\-]*[A-Za-z0-9](?:&gt;|>)?", None, _KEEP),
    (rf"[@\uff20][a-zA-Z_][a-zA-Z_0-9]*|[#\uff03]{_LETTER}(?:{_LETTER}|\d|_)*", None, _KEEP),
    (_REDAUX, r"[^A-Za-z]|$", lambda t: _latex_quotes(t, False)),
    (_SREDAUX, None, _KEEP),
    (rf"{_APOS}[tT]", r"(?i:is|was)\b", _KEEP),
    (r"\d{1,2}[\-/]\d{1,2}[\-/]\d{2,4}", None, _KEEP),
    (_NUMBER, None, _KEEP),
    (r"[\u207a\u207b\u208a\u208b]?(?:[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+|[\u2080-\u2089]+)", None, _KEEP),
    (r"(?:\d{1,4}[\- \u00a0])?\d{1,4}(?:\\?/|\u2044)\d{1,4}", None, lambda t: t.replace(" ", "\u00a0")),
    (r"[\u00bc\u00bd\u00be\u2153-\u215e]", None, _fractions),
    (
        rf"-(?:RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|(?i:pro|anti)-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls|Cap{_APOS}n|c{_APOS}est",
        None,
        lambda t: t.replace("&amp;", "&"),
    ),
    (
        r"[\p{Alpha}\d]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}".replace(
            r"\p{Alpha}", "A-Za-z"
        ),
        None,
        _KEEP,
    ),
    (r"[A-Z]*\$|#", None, _KEEP),
    (
        r"[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20aa\u20ac\u20b9\u060b\u0e3f\u20a4\uffe0\uffe1\uffe5\uffe6]",
        None,
        _currency,
    ),
    (
        r"[A-Za-z](?:\.[A-Za-z])*\.",
        rf"[{_SPACE_CHARS}{_NEWLINE_CHARS}]+(?:(?:{_SENT_WORDS})[{_SPACE_CHARS}{_NEWLINE_CHARS}]|{_SGML})",
        _acronym,
    ),
    (_ABBREV1, None, _KEEP),
    (rf"(?:{_ABBREV4})\.", None, _KEEP),
    (_ABBREV3, r"[ \t\u00a0\r\n]?\d", _KEEP),
    (_ABBREV4, _SPACE, _KEEP),
    (_ACRO, f"[{_SPACE_CHARS}{_NEWLINE_CHARS}]", _KEEP),
    (rf"{_APOS}\d\d", f"[{_SPACE_CHARS}{_NEWLINE_CHARS}]", _KEEP),
    (rf"{_WORD}\.", r"[,;:]", _KEEP),
    (
        r"(?:\(\d{3}\)[ \u00a0]?|\d{3}[\- \u00a0.])\d{3}[\- \u00a0.]\d{4}",
        None,
        lambda t: _paren(t.replace(" ", "\u00a0")),
    ),
    (r"[<>]?[:;=][\-o*']?[()DPdpO\\{@|\[\]]", r"[^A-Za-z0-9]", _brackets),
    (r"\"|&quot;", r"[A-Za-z0-9$]", lambda t: _latex_quotes(t, True)),
    (r"\"|&quot;", None, lambda t: _latex_quotes(t, False)),
    (r"\+", None, _KEEP),
    (r"[%&\u2030\u2031]", None, _KEEP),
    (r"~|\^", None, _KEEP),
    (r"\^_\^", None, _KEEP),
    (r"\||\\|\x7f", None, _KEEP),
    (r"<<|>>", None, _KEEP),
    (r"\[", None, lambda t: "-LSB-"),
    (r"\]", None, lambda t: "-RSB-"),
    (r"[<>]", None, _KEEP),
    (r"&lt;", None, lambda t: "<"),
    (r"&gt;", None, lambda t: ">"),
    (r"\{", None, lambda t: "-LCB-"),
    (r"\}", None, lambda t: "-RCB-"),
    (r"\(", None, lambda t: "-LRB-"),
    (r"\)", None, lambda t: "-RRB-"),
    (r"-+", None, _hyphens),
    (r"\.{3,5}|(?:\.[ \u00a0]){2,4}\.|[\u0085\u2026]", None, lambda t: "..."),
    (r"@+|#+|_+", None, _KEEP),
    (r"\*+|(?:\\\*){1,3}", None, _KEEP),
    (r"[,;:]", None, _KEEP),
    (r"[?!]+", None, _KEEP),
    (r"[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa]", None, _KEEP),
    (r"=", None, _KEEP),
    (r"/", None, _KEEP),
    (
        rf"[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:[A-Za-z0-9\u00ad]+|(?:{_ACRO})\.))+",
        None,
        lambda t: t.replace("\u00ad", ""),
    ),
    (rf"(?:{_THING})\.", r"[,;:]", _KEEP),
    (_THING, None, _KEEP),
    (r"[A-Z]+(?:(?:[+&]|&amp;)[A-Z]+)+", None, lambda t: t.replace("&amp;", "&")),
    (r"'", r"[A-Za-z][^ \t\n\r\u00a0]", lambda t: _latex_quotes(t, True)),
    (_REDAUX, None, lambda t: _latex_quotes(t, False)),
    (
        rf"[`\u2018\u2019\u201a\u201b\u201c\u201d\u0091\u0092\u0093\u0094\u201e\u201f\u2039\u203a\u00ab\u00bb]{{1,2}}|''|{_APOS}",
        None,
        lambda t: _latex_quotes(t, False),
    ),
    (_MISC, None, _KEEP),
    (f"[{_SPACE_CHARS}{_NEWLINE_CHARS}\u200b\u200e\u200f\ufeff\x00]+", None, _DROP),
]
_ASSIMILATION_SPLIT = {"cannot": 3, "gimme": 3, "gonna": 3, "gotta": 3, "lemme": 3, "more'n": 4, "wanna": 3}


def _compile() -> list[tuple[re.Pattern[str], object]]:
    # The trailing context is part of the match (JFlex counts it for longest match);
    # the token itself is the "tok" group.
    return [
        (re.compile(f"(?P<tok>{pattern})" + (f"(?:{trail})" if trail else "")), action)
        for pattern, trail, action in _RULES_SRC
    ]


_RULES = _compile()
# Chunks that are one plain word or number are a single token: they skip the lexer.
_SIMPLE_CHUNK = re.compile(r"[A-Za-z]+|[0-9]+")
_ASSIM_WORDS = frozenset(_ASSIMILATION_SPLIT)


def _scan(text: str, limit: int) -> list[str]:
    """Tokens starting before ``limit`` (the rest of ``text`` is trailing context only)."""
    out: list[str] = []
    pos = 0
    while pos < limit:
        best_len, best_end, best_action = 0, pos, None
        for rx, action in _RULES:
            m = rx.match(text, pos)
            if m is not None and m.end() - pos > best_len:
                best_len, best_end, best_action = m.end() - pos, m.end("tok"), action
        if best_end == pos:
            pos += 1  # untokenizable character: PTBTokenizer deletes it (untokenizable=firstDelete)
            continue
        tok = text[pos:best_end]
        if best_action == "assim":  # cannot -> can + not, gonna -> gon + na, ...
            cut = _ASSIMILATION_SPLIT[tok.lower()]
            out.append(tok[:cut])
            pos += cut
            continue
        pos = best_end
        if best_action is not _DROP:
            out.append(tok if best_action is _KEEP else best_action(tok))  # type: ignore[operator]
    return out


def lex(text: str) -> list[str]:
    """Tokenize one line the way PTBLexer does (tokens before lower-casing and punctuation removal)."""
    return _scan(text, len(text))


@functools.lru_cache(maxsize=200_000)
def _lex_chunk(chunk: str, context: str) -> tuple[str, ...]:
    """Lower-cased tokens of a whitespace-free chunk, given what follows it."""
    if _SIMPLE_CHUNK.fullmatch(chunk) and chunk.lower() not in _ASSIM_WORDS:
        return (chunk.lower(),)
    return tuple(t.lower() for t in _scan(chunk + context, len(chunk)))


_SPLIT = re.compile(f"([{_SPACE_CHARS}]+)")
# Tokens that may span a space (phone numbers, "5 1/2", SGML tags): such lines take the slow path.
_CROSS_SPACE = re.compile(
    rf"\(\d{{3}}\){_SPACE}?\d|\d{{3}}[ \u00a0]\d{{3}}[\- \u00a0.]\d{{4}}|\d{_SPACE}\d{{1,4}}(?:\\?/|\u2044)\d|<[!?A-Za-z/]"
)
_LINEBREAKS = re.compile(f"[{_NEWLINE_CHARS}]")


def ptb_tokens(line: str, following: str | None = None) -> list[str]:
    """PTB tokens of one caption (lower-cased, *before* punctuation removal).

    ``following`` is the text after this caption's line break in pycocoevalcap's
    input file (the next caption and its own line break; ``None`` for the last one):
    Java lexes the whole file, and a few rules look across the line break (``No.``
    before a number, ``A.`` before a sentence word).
    """
    line = _LINEBREAKS.sub(" ", line)
    tail = "" if following is None else "\n" + _LINEBREAKS.sub(" ", following)
    if _CROSS_SPACE.search(line):
        return [t.lower() for t in _scan(line + tail, len(line))]
    parts = _SPLIT.split(line)  # chunk, separator, chunk, ..., chunk
    if parts and not parts[0]:
        parts = parts[2:]
    if parts and not parts[-1]:
        parts = parts[:-2] if len(parts) > 1 else []
        tail = " " + tail
    out: list[str] = []
    last = len(parts) - 1
    for i in range(0, len(parts), 2):
        chunk = parts[i]
        # Rules that look past a chunk's end only care what follows a final period
        # (abbreviations before a number, acronyms before a sentence word); the context
        # is reduced to a canonical representative, which keeps the chunk cache small.
        if chunk[-1] == ".":
            following = "".join(parts[i + 1 : i + 4]) + (tail if i + 3 >= last else "")
            context = _canonical_context(following)
        elif i < last or tail:
            context = " x"
        else:
            context = ""
        out.extend(_lex_chunk(chunk, context))
    return out


_SENT_CONTEXT = re.compile(
    rf"[{_SPACE_CHARS}{_NEWLINE_CHARS}]+(?:(?:{_SENT_WORDS})[{_SPACE_CHARS}{_NEWLINE_CHARS}]|{_SGML})"
)
_DIGIT_CONTEXT = re.compile(r"[ \t\u00a0\r\n]?\d")


def _canonical_context(following: str) -> str:
    """A short stand-in for ``following`` that every trailing-context rule treats the same way."""
    if not following:
        return ""
    if _SENT_CONTEXT.match(following):
        return " The "
    if _DIGIT_CONTEXT.match(following):
        return " 1" if following[0] != "\n" else "\n1"
    return following[0] + "x"


def tokenize_caption(caption: str, following: str | None = None) -> str:
    """One caption as pycocoevalcap's PTBTokenizer returns it: tokens joined by spaces, punctuation removed."""
    toks = ptb_tokens(caption.replace("\n", " "), following)
    return " ".join(t for t in toks if t not in PUNCTUATIONS)


def tokenize(captions_for_image: Mapping[object, Sequence[str]]) -> dict[object, list[str]]:
    """Drop-in for ``PTBTokenizer().tokenize`` taking plain strings: ``{id: [caption, ...]}``."""
    flat = [(k, c.replace("\n", " ")) for k, v in captions_for_image.items() for c in v]
    out: dict[object, list[str]] = {}
    for i, (k, cap) in enumerate(flat):
        following = None
        if i + 1 < len(flat):
            following = flat[i + 1][1] + ("\n" if i + 2 < len(flat) else "")
        out.setdefault(k, []).append(tokenize_caption(cap, following))
    return out


class PythonPTBTokenizer:
    """Same interface as ``pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer`` (``{'caption': ...}`` dicts)."""

    def tokenize(self, captions_for_image: Mapping[object, Sequence[Mapping[str, str]]]) -> dict[object, list[str]]:
        return tokenize({k: [c["caption"] for c in v] for k, v in captions_for_image.items()})


class JavaPTBTokenizer:
    """pycocoevalcap's Java tokenizer behind the plain-string interface of :func:`tokenize`."""

    def tokenize(self, captions_for_image: Mapping[object, Sequence[str]]) -> dict[object, list[str]]:
        import shutil

        from sarvlm.core.errors import SarvlmError

        if shutil.which("java") is None:
            raise SarvlmError("tokenizer 'java': no java executable on PATH (use tokenizer='python')")
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in captions_for_image.items()})
