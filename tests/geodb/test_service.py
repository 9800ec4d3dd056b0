import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

import pytest

from core.problems import ConfigError
from core.settings import GeoIP
from geodb.service import GeoService
from tests.support.geoip import ASN, CITY, COUNTRY, build, geoip_file

GB = ip_address("81.2.69.142")


def replace(path: Path, source: Path) -> None:
    """As `warren geodb fetch` and geoipupdate do: a new file renamed over the old one."""
    staged = path.with_suffix(".new")
    shutil.copy(source, staged)
    os.replace(staged, path)


def service(tmp_path: Path, **extra: object) -> tuple[GeoService, Path]:
    path = tmp_path / "GeoLite2-Country.mmdb"
    shutil.copy(geoip_file(COUNTRY), path)
    return GeoService(GeoIP(country_db=(path,), **extra)), path


def test_nothing_configured_means_no_service() -> None:
    assert GeoService.from_settings(GeoIP()) is None


def test_every_unusable_file_is_named_at_start(tmp_path: Path) -> None:
    source = tmp_path / "warren.yaml"
    source.write_text("geoip:\n  country_db: [a.mmdb, b.mmdb]\n  asn_db: c.mmdb\n")
    settings = GeoIP(
        country_db=(geoip_file(COUNTRY), tmp_path / "missing.mmdb"), asn_db=(geoip_file(CITY),)
    )
    with pytest.raises(ConfigError) as refused:
        GeoService.from_settings(settings, source)
    assert [str(p) for p in refused.value.problems] == [
        f"{source}:2: geoip.country_db[1]: {tmp_path}/missing.mmdb: no such file "
        "(`warren geodb fetch` downloads one; `warren geodb build` makes one)",
        f"{source}:3: geoip.asn_db: {geoip_file(CITY)}: is a GeoIP2-City database; geoip.asn_db "
        "needs an ASN database (GeoLite2-ASN, DB-IP ASN lite, or one made by `warren geodb "
        "build` with an ASN column)",
    ]


def test_a_replaced_file_is_swapped_in_whole_with_a_fresh_cache(tmp_path: Path) -> None:
    geo, path = service(tmp_path)
    assert geo.country(GB) == "GB"
    before = geo.current
    assert geo.reload(path) is True
    assert geo.current is before  # unchanged on disk: nothing to do
    replace(path, build(tmp_path, "81.2.69.0/24,SE\n"))
    assert geo.reload(path) is True
    assert geo.current is not before
    assert geo.country(GB) == "SE"
    assert geo.country(ip_address("89.160.20.112")) is None
    assert before.country(GB) == "GB"  # a request still holding the old lookup is unaffected
    assert geo.reloads == 1
    assert geo.status()["databases"][0]["type"] == "Warren-Country (compat=GeoLite2-Country)"  # type: ignore[index]


@pytest.mark.parametrize(
    "bad", [lambda tmp: geoip_file(CITY), lambda tmp: tmp / "garbage.mmdb"], ids=["city", "garbage"]
)
def test_a_bad_replacement_is_refused_and_the_last_good_copy_keeps_answering(
    tmp_path: Path, bad: Callable[[Path], Path], caplog: pytest.LogCaptureFixture
) -> None:
    geo, path = service(tmp_path)
    (tmp_path / "garbage.mmdb").write_bytes(b"\x00" * 4096)
    before = geo.current
    replace(path, bad(tmp_path))
    with caplog.at_level(logging.ERROR, "warren.geodb"):
        assert geo.reload(path) is False
    assert geo.current is before
    assert geo.country(GB) == "GB"
    status = geo.status()
    assert (status["reloads"], status["failed_reloads"]) == (0, 1)
    assert str(path) in str(status["last_error"])
    assert "still answering from GeoLite2-Country.mmdb (GeoLite2-Country" in caplog.text
    replace(path, geoip_file(COUNTRY))  # fixed: the next change is taken
    assert geo.reload(path) is True
    assert geo.status()["last_error"] is None


def test_one_file_serving_both_kinds_is_reloaded_for_both(tmp_path: Path) -> None:
    path = build(tmp_path, "198.51.100.0/24,DE,64500\n")
    geo = GeoService(GeoIP(country_db=(path,), asn_db=(path,)))
    assert geo.paths == (path,)
    replace(path, build(tmp_path, "198.51.100.0/24,FR,64501\n", name="next.mmdb"))
    assert geo.reload(path)
    assert tuple(geo.facts(ip_address("198.51.100.1"))) == ("FR", 64501)


def test_watch_reloads_changed_files_and_survives_a_missing_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, path = service(tmp_path)
    asn = tmp_path / "GeoLite2-ASN.mmdb"
    shutil.copy(geoip_file(ASN), asn)
    geo = GeoService(GeoIP(country_db=(path,), asn_db=(asn,)))
    replacement = build(tmp_path, "81.2.69.0/24,SE\n")

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(500):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition not met within 5s")

    async def scenario() -> None:
        watching = asyncio.create_task(geo.watch(0.02))
        try:
            replace(path, replacement)
            await until(lambda: geo.country(GB) == "SE")
            path.unlink()
            await until(lambda: "is gone; still answering from the copy loaded at" in caplog.text)
            assert geo.country(GB) == "SE"
            assert geo.asn(ip_address("1.128.0.1")) == 1221  # the other file is untouched
            replace(path, geoip_file(COUNTRY))
            await until(lambda: geo.country(GB) == "GB")
        finally:
            watching.cancel()

    with caplog.at_level(logging.INFO, "warren.geodb"):
        asyncio.run(scenario())
    assert geo.reloads == 2


def test_a_replaced_database_is_freed_as_soon_as_nothing_uses_it(tmp_path: Path) -> None:
    import gc
    import weakref

    geo, path = service(tmp_path)
    geo.country(GB)
    old_reader = weakref.ref(geo.current.countries[0].reader)
    replace(path, build(tmp_path, "81.2.69.0/24,SE\n"))
    enabled = gc.isenabled()
    gc.disable()  # no cycle collector: reference counting alone must free the old copy
    try:
        assert geo.reload(path)
        assert old_reader() is None
    finally:
        if enabled:
            gc.enable()


def test_the_open_databases_are_named_for_the_log(tmp_path: Path) -> None:
    geo, path = service(tmp_path)
    (line,) = geo.opened()
    assert line.startswith("country ")
    assert path.name in line
