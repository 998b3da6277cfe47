"""The scan check fuzzed: real JPEG (baseline, progressive, restart markers, MPF, CMYK),
GIF (static, animated), BMP (RGB, palette) and PNG (alpha, transparent palette, rotated: the
check and its re-encoding as JPEG) bytes made by Pillow, mutated — bytes flipped,
cut, inserted and deleted, header fields set to 0, 1, 255, 65535 — thousands of times,
reproducibly (``derandomize=True``, no example database). The check must return the image's
facts or refuse with a Chinese reason of its own, never crash, never fall back to its catch-all
(``UnreadableScan``) and never warn (pytest turns warnings into errors).

Every crash the fuzzer found in the check as it was is kept below as a named case, with the
seed and the mutations that make its exact bytes."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.scans import (
    MAIL_FORMATS,
    InvalidScan,
    ScanInfo,
    ScanRules,
    UnreadableScan,
    accept_scan,
    inspect_scan,
)
from tests.support.poison_images import FIELD_VALUES, Op, fuzz_seeds, jpeg, mutated

SEEDS = fuzz_seeds()
# the rules but the size: the small seeds must reach the decoder, not stop at "too small"
ANY_SIZE = ScanRules(min_short_side=1, min_long_side=1, formats=MAIL_FORMATS)
CJK = re.compile(r"[\u4e00-\u9fff]")
EXAMPLES_PER_SEED = 1000  # × 11 seeds: 11,000 cases, about 20 s here

AT = st.integers(0, 96) | st.integers(0, 1 << 16)  # near the headers, or anywhere (wrapped)
OPS = st.lists(st.one_of(
    st.tuples(st.just("flip"), AT, st.integers(1, 255)),
    st.tuples(st.just("cut"), AT),
    st.tuples(st.just("insert"), AT, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), AT, st.integers(1, 64)),
    st.tuples(st.just("set"), st.integers(0, 200), st.sampled_from(FIELD_VALUES)),
), min_size=1, max_size=4)


def check(data: bytes) -> ScanInfo | InvalidScan:
    """The property: a result, or a refusal the check meant."""
    try:
        return accept_scan(data, ANY_SIZE).info
    except UnreadableScan as error:
        raise AssertionError("the check fell back to its catch-all: a crash") from error
    except InvalidScan as error:
        refusal = error
    assert CJK.search(str(refusal)), str(refusal)
    return refusal


@pytest.mark.parametrize("seed", sorted(SEEDS))
@settings(max_examples=EXAMPLES_PER_SEED, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(ops=OPS)
def test_mutated_images_are_taken_or_refused_never_crash(seed: str, ops: list[Op]) -> None:
    result = check(mutated(SEEDS[seed], ops))
    if isinstance(result, ScanInfo):
        assert result.format in MAIL_FORMATS
        assert min(result.width, result.height) >= 1


def test_the_seeds_pass_as_they_are() -> None:
    """Else the fuzzer would only ever mutate a refusal."""
    for name, data in SEEDS.items():
        result = check(data)
        assert isinstance(result, ScanInfo) or name == "gif-animated", (name, result)


# --- what the fuzzer (and the issue) found: each crashed the check before ----------------
# name → seed (or bytes), the mutations; every one must be refused under the real rules and
# be taken or refused, never crash, when any size is allowed
CRASHES: dict[str, tuple[str | bytes, list[Op]]] = {
    # the issue: a separator line in an unlock mail, and icons; Pillow's draft() scaled them
    # by 1/8 to 0 pixels and divided by it (ZeroDivisionError)
    "separator-line-800x4": (jpeg((800, 4)), []),
    "icon-3x3": (jpeg((3, 3)), []),
    "column-4x800": (jpeg((4, 800)), []),
    # the fuzzer: a frame header saying 1 pixel high (ZeroDivisionError)
    "cmyk-jpeg-one-pixel-high": ("jpeg-cmyk-adobe", [("set", 102, b"\0\1")]),
    # MPF with 38 bytes gone: the first image's frame header now says 8×6 (ZeroDivisionError)
    "mpf-jpeg-bytes-deleted": ("jpeg-mpf", [("delete", 1752, 38)]),
    # an animated GIF cut short: Pillow's frame count reads past the end
    "animated-gif-cut-after-second-control-block": ("gif-animated", [("cut", 215)]),  # struct
    "animated-gif-cut-in-second-descriptor": ("gif-animated", [("cut", 223)]),  # IndexError
    "animated-gif-cut-at-second-descriptor-end": ("gif-animated", [("cut", 225)]),  # IndexError
    "animated-gif-cut-in-third-frame": ("gif-animated", [("cut", 392)]),  # IndexError
    "animated-gif-cut-at-third-descriptor": ("gif-animated", [("cut", 389)]),  # IndexError
}


@pytest.mark.parametrize("name", sorted(CRASHES))
def test_what_crashed_the_check_is_refused_with_a_reason(name: str) -> None:
    seed, ops = CRASHES[name]
    data = mutated(SEEDS[seed] if isinstance(seed, str) else seed, ops)
    check(data)  # any size allowed: taken or refused, never a crash
    with pytest.raises(InvalidScan, match=r"图片太小|图片已损坏") as refused:
        inspect_scan(data)
    assert not isinstance(refused.value, UnreadableScan)
