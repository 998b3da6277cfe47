"""``python -m bot.samples``: a real command line (it once made a folder named --help)."""

from pathlib import Path

import pytest
from PIL import Image

from bot import samples


def test_help_explains_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for wrong, code in ((["--help"], 0), (["-h"], 0), (["--colour", "red"], 2)):
        with pytest.raises(SystemExit) as exit_:
            samples.main(wrong)
        assert exit_.value.code == code
    assert "usage: python -m bot.samples" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # no folder named --help, nor anything else


def test_writes_four_scans_and_data_to_type(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert samples.main([str(tmp_path / "scans"), "--format", "png", "--seed", "7"]) == 0
    written = sorted((tmp_path / "scans").iterdir())
    assert [p.name for p in written] == ["1-form.png", "2-id-card.png", "3-authorisation.png",
                                         "4-licence.png"]
    with Image.open(written[0]) as image:
        assert image.format == "PNG"
    first = capsys.readouterr().out
    assert "统一社会信用代码: 91371302" in first
    samples.main([str(tmp_path / "again"), "--seed", "7"])
    assert capsys.readouterr().out.split("\n")[1:3] == first.split("\n")[1:3]  # reproducible
