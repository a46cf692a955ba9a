"""The zip unpacking budget: refused by the directory first, then by what unpacking produces."""

import io
import zipfile

import pytest

from tests.utils.uploads import bzip2_bomb, image_folder_zip
from vitscope.contracts.archives import (
    ArchiveBudget,
    ArchiveBudgetError,
    Unpacker,
    check_declared,
    image_members,
)


def members(data):
    archive = zipfile.ZipFile(io.BytesIO(data))
    return archive, image_members(archive)


def test_the_declared_total_and_ratio_refuse_a_bomb_without_decompressing_it():
    _, bomb = members(bzip2_bomb(members=3, zeros=2_000_000))
    with pytest.raises(ArchiveBudgetError, match="unpack to 6000207 bytes; the limit is 5000000"):
        check_declared(bomb, ArchiveBudget(5_000_000, 1e9, 5))
    with pytest.raises(ArchiveBudgetError, match="times its compressed size; the limit is 100"):
        check_declared(bomb, ArchiveBudget(10**9, 100, 5))


def test_an_honest_zip_passes_and_is_read_whole():
    archive, found = members(image_folder_zip({"circle": 2}))
    check_declared(found, ArchiveBudget(10**9, 200, 5))
    unpacker = Unpacker(ArchiveBudget(10**9, 200, 5))
    assert [len(unpacker.read(archive, m)) for m in found] == [m.file_size for m in found]
    assert unpacker.produced == sum(m.file_size for m in found)


def test_the_bytes_really_produced_count_against_the_total():
    archive, found = members(image_folder_zip({"circle": 3}))
    unpacker = Unpacker(ArchiveBudget(found[0].file_size + 1, 200, 5))
    unpacker.read(archive, found[0])
    with pytest.raises(ArchiveBudgetError, match="more than"):
        unpacker.read(archive, found[1])
