import hashlib
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atome_core import formats as F
from atome_core.chapters import packing as measure
from atome_core.cli import main as atome_main
from atome_core.engine.conformance import atmb_damages, entry_offset, patch, with_crc
from atome_core.engine.conformance import section_table as entries
from atome_core.paths import shared_interop_dir

TINY = F.RoutedBlobConfig(vocab=16, d_model=8, n_layers=2, d_head=4, top_k=2, kernel=3)
PUBLISHED_BLOB_SHA256 = "fdf8a6b69eacc5e4834e488759593198e482399887fce2c5b048a599844ae2f5"
PUBLISHED_PT_SHA256 = "0bba4c123a9026bffb36f05acc9a7f9e68dcac95b01321d151d32d8320b660c8"


def random_tensors(cfg, seed=0, p0=0.4):
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in F.expected_shapes(cfg).items():
        if name.endswith(".scale"):
            out[name] = np.asarray(rng.uniform(0.01, 0.1), np.float32)
        elif name in F.trit_weight_names(cfg):
            p = [(1 - p0) / 2, p0, (1 - p0) / 2]
            out[name] = (rng.choice(3, size=shape, p=p) - 1).astype(np.int8)
        else:
            out[name] = rng.standard_normal(shape).astype(np.float32)
    return out


def assert_tensors_equal(a, b):
    assert set(a) == set(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.shape == y.shape and x.dtype == y.dtype, k
        if x.dtype == np.float32:  # bit-exact: compare the float bits
            assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), k
        else:
            assert np.array_equal(x, y), k


@pytest.fixture(scope="module")
def tiny_blob():
    return F.write_blob(TINY, random_tensors(TINY))


@pytest.fixture(scope="module")
def blobs_by_codec():
    return {c: F.write_blob(TINY, random_tensors(TINY, seed=9), codec=c) for c in F.packing.CODECS}


def published(name, sha):
    interop = shared_interop_dir()
    if interop is None or not (interop / name).is_file():
        pytest.skip(f"../shared/interop/{name} is absent (published Atome kit fixture); test skipped")
    data = (interop / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == sha, f"{name}: sha256 differs from the published one"
    return data


# -- writing and reading ------------------------------------------------------------


@pytest.mark.parametrize("codec", ["dense", "rans", "2bit", "base3x5", "auto"])
def test_roundtrip_float32_is_bit_exact(codec):
    t = random_tensors(TINY, seed=1)
    cfg, back = F.read_blob(F.write_blob(TINY, t, codec=codec))
    assert cfg == TINY
    assert_tensors_equal(t, back)


def test_float16_vectors_are_rounded_and_scales_stay_float32():
    t = random_tensors(TINY, seed=2)
    blob16, blob32 = F.write_blob(TINY, t, float_dtype="float16"), F.write_blob(TINY, t)
    _, back = F.read_blob(blob16)
    for name in F.vector_names(TINY):
        assert np.array_equal(back[name], t[name].astype(np.float16).astype(np.float32))
    for name in F.trit_weight_names(TINY):
        assert np.array_equal(back[name], t[name])
        assert back[F.scale_key(name)] == t[F.scale_key(name)]
    assert len(blob32) - len(blob16) == 2 * len(F.vector_names(TINY)) * TINY.d_model


def test_float16_refuses_values_it_cannot_hold():
    t = random_tensors(TINY)
    t["final_norm.bias"][0] = 1e6
    with pytest.raises(ValueError, match="float16 range"):
        F.write_blob(TINY, t, float_dtype="float16")


def test_per_section_codecs_and_auto_picks_the_smallest():
    t = random_tensors(TINY, seed=3, p0=0.9)  # skewed: rANS wins the big sections
    blob = F.write_blob(TINY, t, codec={"embed.weight": "2bit", "unembed.weight": "rans"})
    info = F.inspect_blob(blob)
    codecs = {s["name"]: s["codec"] for s in info.sections}
    assert codecs["embed.weight"] == "2bit" and codecs["unembed.weight"] == "rans"
    assert codecs["blocks.sparse.Wv.weight"] == "dense"
    auto = F.write_blob(TINY, t, codec="auto")
    for codec in ["dense", "rans", "2bit", "base3x5"]:
        assert len(auto) <= len(F.write_blob(TINY, t, codec=codec))
    with pytest.raises(ValueError, match="unknown trit sections"):
        F.write_blob(TINY, t, codec={"blocks.norm": "dense"})


TYPE_BYTES = {"u8": 1, "u16": 2, "u32": 4, "u8[4]": 4, "u16[4]": 8}


@pytest.mark.parametrize("fields, size", [(F.HEADER_FIELDS, F.HEADER.size), (F.ENTRY_FIELDS, F.ENTRY.size)])
def test_documented_fields_tile_the_struct(fields, size):
    end = 0
    for offset, typ, _, _ in fields:
        assert offset == end and offset % min(TYPE_BYTES[typ], 4) == 0
        end = offset + TYPE_BYTES[typ]
    assert end == size


def test_layout_is_aligned_and_matches_the_documented_fields(tiny_blob):
    fields = dict((name, off) for off, _, name, _ in F.HEADER_FIELDS)
    assert tiny_blob[:4] == F.MAGIC
    assert struct.unpack_from("<I", tiny_blob, fields["file_size"])[0] == len(tiny_blob)
    assert struct.unpack_from("<H", tiny_blob, fields["d_model"])[0] == TINY.d_model
    assert len(tiny_blob) % 4 == 0
    for sid, dtype, codec, ndim, *dims, offset, length in entries(tiny_blob):
        assert offset % 4 == 0
        assert tuple(dims[:ndim]) == F.SECTIONS_BY_ID[sid].shape(TINY)
    assert struct.unpack("<I", tiny_blob[-4:])[0] == zlib.crc32(tiny_blob[:-4])


def test_writer_refuses_tensors_that_do_not_match_the_config():
    t = random_tensors(TINY)
    with pytest.raises(ValueError, match="missing"):
        F.write_blob(TINY, {k: v for k, v in t.items() if k != "embed.weight"})
    bad = dict(t, **{"embed.weight": np.full((16, 8), 2, np.int8)})
    with pytest.raises(ValueError, match="-1, 0 or"):
        F.write_blob(TINY, bad)
    with pytest.raises(ValueError, match="shape"):
        F.write_blob(F.RoutedBlobConfig(vocab=16, d_model=8, n_layers=2, d_head=2, top_k=2, kernel=3), t)


def test_tensors_from_state_dict_uses_the_quantiser():
    import torch

    from atome_core.quant import ternarize
    torch.manual_seed(0)
    sd = {k: torch.randn(s) for k, s in F.expected_shapes(TINY).items() if not k.endswith(".scale")}
    t = F.tensors_from_state_dict(sd, TINY)
    trits, alpha = ternarize(sd["blocks.1.sparse.Wv.weight"])
    assert np.array_equal(t["blocks.1.sparse.Wv.weight"], trits.to(torch.int8).numpy())
    assert t["blocks.1.sparse.Wv.weight.scale"] == np.float32(alpha.item())
    _, back = F.read_blob(F.write_blob(TINY, t))
    assert_tensors_equal(t, back)
    with pytest.raises(ValueError, match="unexpected"):
        F.tensors_from_state_dict({**sd, "extra.weight": torch.zeros(1)}, TINY)
    assert F.config_from_state_dict(sd, top_k=2) == TINY


def test_config_from_the_models_and_the_kit():
    assert F.as_config({"vocab_size": 256, "d_model": 256, "n_layers": 8, "d_head": 64, "top_k": 4,
                        "kernel_size": 5, "n_pathways": 3}) == F.PRESETS["944k"]
    assert F.PRESETS["60k"].n_params == 60_800 and F.PRESETS["944k"].n_params == 944_640
    with pytest.raises(ValueError):
        F.as_config({"vocab": 0, "d_model": 8, "n_layers": 1, "d_head": 1, "top_k": 1, "kernel": 1})
    routed = pytest.importorskip("atome_core.models.routed")
    assert F.as_config(routed.RoutedConfig()) == F.PRESETS["60k"]
    with pytest.raises(ValueError, match="ablated"):
        F.as_config(routed.RoutedConfig(pathways=("local", "state")))


def test_60k_dense_float16_blob_is_at_most_15000_bytes():
    size = len(F.write_blob("60k", random_tensors(F.PRESETS["60k"]), codec="dense", float_dtype="float16"))
    assert size <= 15_000
    assert F.legacy_size("60k") == 20_575 and F.legacy_size("60k", F.ATOME02_MAGIC) == 17_613


# -- rejections: one named error per malformed case ------------------------------------


def test_reject_wrong_magic(tiny_blob):
    with pytest.raises(F.BadMagicError):
        F.read_blob(b"XTMB" + tiny_blob[4:])
    with pytest.raises(F.BadMagicError, match="ATOME01"):
        F.read_blob(b"ATOME01" + bytes(100))


def test_reject_unknown_version(tiny_blob):
    with pytest.raises(F.UnsupportedVersionError):
        F.read_blob(patch(tiny_blob, 4, "<H", 2))


@pytest.mark.parametrize("keep", [0, 2, 5, 20, 31, -1, -4])
def test_reject_truncation(tiny_blob, keep):
    with pytest.raises(F.TruncatedBlobError):
        F.read_blob(tiny_blob[:keep])


def test_reject_trailing_bytes(tiny_blob):
    with pytest.raises(F.TrailingBytesError):
        F.read_blob(tiny_blob + b"\x00")


def test_reject_crc_mismatch(tiny_blob):
    b = bytearray(tiny_blob)
    b[len(b) // 2] ^= 0x10
    with pytest.raises(F.ChecksumError):
        F.read_blob(bytes(b))


def test_reject_out_of_range_and_misaligned_sections(tiny_blob):
    e = entry_offset(3)
    with pytest.raises(F.SectionBoundsError, match="outside"):
        F.read_blob(patch(tiny_blob, e + 12, "<I", len(tiny_blob)))
    with pytest.raises(F.SectionBoundsError, match="outside"):
        F.read_blob(patch(tiny_blob, e + 16, "<I", 2 ** 32 - 1))
    with pytest.raises(F.SectionBoundsError, match="aligned"):
        F.read_blob(patch(tiny_blob, e + 12, "<I", entries(tiny_blob)[3][-2] + 2))
    with pytest.raises(F.SectionBoundsError, match="table"):
        F.read_blob(patch(tiny_blob, 24, "<H", 65535))
    with pytest.raises(F.SectionBoundsError, match="outside"):  # a section over the table itself
        F.read_blob(patch(tiny_blob, e + 12, "<I", 0))


def test_reject_overlapping_sections(tiny_blob):
    first = entries(tiny_blob)[0]
    with pytest.raises(F.SectionOverlapError):
        F.read_blob(patch(tiny_blob, entry_offset(1) + 12, "<I", first[-2]))


def test_reject_config_that_does_not_match_the_sections(tiny_blob):
    with pytest.raises(F.ConfigMismatchError, match="shape"):
        F.read_blob(patch(tiny_blob, 14, "<H", TINY.d_model + 1))  # header d_model
    with pytest.raises(F.ConfigMismatchError, match="twice"):
        F.read_blob(patch(tiny_blob, entry_offset(1), "<B", entries(tiny_blob)[0][0]))
    with pytest.raises(F.ConfigMismatchError, match="not part"):
        F.read_blob(patch(tiny_blob, entry_offset(1), "<B", 77))
    with pytest.raises(F.ConfigMismatchError, match="missing"):
        F.read_blob(patch(tiny_blob, 24, "<H", 9))
    with pytest.raises(F.ConfigMismatchError, match="dtype"):  # a float section claiming trits
        F.read_blob(patch(tiny_blob, entry_offset(1) + 1, "<BB", F.DTYPE_TRIT, 3))


def test_reject_bad_header_fields(tiny_blob):
    with pytest.raises(F.BadHeaderError, match="architecture"):
        F.read_blob(patch(tiny_blob, 6, "<H", 9))
    with pytest.raises(F.BadHeaderError, match="reserved"):
        F.read_blob(patch(tiny_blob, 26, "<H", 1))
    with pytest.raises(F.BadHeaderError, match="config"):
        F.read_blob(patch(tiny_blob, 16, "<H", 0))  # n_layers 0
    with pytest.raises(F.BadHeaderError, match="dtype"):
        F.read_blob(patch(tiny_blob, entry_offset(0) + 1, "<B", 9))
    with pytest.raises(F.BadHeaderError, match="codec"):
        F.read_blob(patch(tiny_blob, entry_offset(0) + 2, "<B", 0))


def test_reject_corrupt_section_payloads(tiny_blob):
    e0 = entries(tiny_blob)[0]  # embed.weight, dense
    with pytest.raises(F.CorruptSectionError, match="take"):
        F.read_blob(patch(tiny_blob, entry_offset(0) + 16, "<I", e0[-1] - 1))
    n = TINY.vocab * TINY.d_model
    ones = np.packbits(np.ones(F.packing.DENSE.stream_bits(n), np.uint8), bitorder="little").tobytes()
    b = bytearray(tiny_blob)
    b[e0[-2] + 4:e0[-2] + 4 + len(ones)] = ones  # every group value 2^b - 1 >= 3^k, padding zero
    with pytest.raises(F.CorruptSectionError, match="dense: a group value"):
        F.read_blob(with_crc(bytes(b)))
    two_bit = F.write_blob(TINY, random_tensors(TINY), codec="2bit")
    off = entries(two_bit)[0][-2] + 4
    b = bytearray(two_bit)
    b[off] = 0b10  # code 10 is invalid
    with pytest.raises(F.CorruptSectionError, match="invalid code"):
        F.read_blob(with_crc(bytes(b)))


def test_a_huge_config_in_a_small_file_is_refused_without_allocating():
    """A header claiming 65535 x 65535 trits (4 GiB decoded) in a tiny rANS section."""
    huge = F.RoutedBlobConfig(vocab=65535, d_model=65535, n_layers=1, d_head=1, top_k=1, kernel=1)
    n = len(F.SECTIONS)
    table_end = F.HEADER.size + F.ENTRY.size * n
    out = bytearray(table_end + 64 * n + 4)
    struct.pack_into("<4sHHIHHHHHHHH", out, 0, F.MAGIC, 1, 1, len(out), huge.vocab, huge.d_model,
                     huge.n_layers, huge.d_head, huge.top_k, huge.kernel, n, 0)
    for i, spec in enumerate(F.SECTIONS):
        shape = spec.shape(huge)
        dims = list(shape) + [0] * (4 - len(shape))
        dtype, codec = (F.DTYPE_TRIT, 4) if spec.kind == "trit" else (F.DTYPE_F32, 0)
        F.ENTRY.pack_into(out, entry_offset(i), spec.id, dtype, codec, len(shape), *dims, table_end + 64 * i, 64)
    t0 = time.perf_counter()
    with pytest.raises(F.CorruptSectionError, match="cannot fit"):
        F.read_blob(with_crc(bytes(out)))
    assert time.perf_counter() - t0 < 1.0


# -- fuzzing the reader ---------------------------------------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def read_or_blob_error(data):
    """The reader either returns a model or raises a BlobError; inspect never raises."""
    F.inspect_blob(data)
    try:
        cfg, tensors = F.read_blob(data)
    except F.BlobError:
        return None
    F.check_tensors(tensors, cfg)
    return cfg


@FUZZ
@given(data=st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    read_or_blob_error(data)
    read_or_blob_error(F.MAGIC + struct.pack("<H", 1) + data)


@FUZZ
@given(data=st.data())
def test_fuzz_bit_flips(blobs_by_codec, data):
    tiny_blob = blobs_by_codec[data.draw(st.sampled_from(sorted(blobs_by_codec)))]
    b = bytearray(tiny_blob)
    flips = data.draw(st.lists(st.integers(0, 8 * len(b) - 1), min_size=1, max_size=4, unique=True))
    for bit in flips:
        b[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(F.BlobError):  # the CRC catches any flip in the body
        F.read_blob(bytes(b))
    # with the CRC fixed up, the structural checks must still hold the line
    read_or_blob_error(with_crc(bytes(b)))


@FUZZ
@given(data=st.data())
def test_fuzz_field_mutations_with_valid_crc(blobs_by_codec, data):
    """Overwrite header / section-table bytes with arbitrary values, CRC recomputed."""
    tiny_blob = blobs_by_codec[data.draw(st.sampled_from(sorted(blobs_by_codec)))]
    b = bytearray(tiny_blob)
    table_end = entry_offset(len(F.SECTIONS))
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, table_end - 1))
        b[pos] = data.draw(st.integers(0, 255))
    read_or_blob_error(with_crc(bytes(b)))


@FUZZ
@given(data=st.data())
def test_fuzz_truncations(blobs_by_codec, data):
    tiny_blob = blobs_by_codec[data.draw(st.sampled_from(sorted(blobs_by_codec)))]
    keep = data.draw(st.integers(0, len(tiny_blob) - 1))
    with pytest.raises(F.BlobError):
        F.read_blob(tiny_blob[:keep])
    F.inspect_blob(tiny_blob[:keep])


# -- ATOME01 / ATOME02 -------------------------------------------------------------------


def test_atome01_roundtrip_on_a_random_model():
    t = random_tensors(TINY, seed=5)
    data = F.write_atome01(t, TINY)
    assert len(data) == F.legacy_size(TINY)
    assert_tensors_equal(t, F.read_atome01(data, TINY))
    assert F.write_atome01(F.read_atome01(data, TINY), TINY) == data
    data2 = F.write_atome02(t, TINY)
    assert len(data2) == F.legacy_size(TINY, F.ATOME02_MAGIC)
    assert_tensors_equal(t, F.read_atome02(data2, TINY))


def test_atome01_conv_time_axis_is_reversed():
    t = random_tensors(TINY, seed=6)
    w = np.zeros((8, 1, 3), np.int8)
    w[:, 0, 2] = 1  # PyTorch: last tap = the current position
    t["blocks.0.local.weight"] = w
    data = F.write_atome01(t, TINY)
    name, offset, size = [x for x in F.legacy_item_sizes(TINY) if x[0] == "blocks.0.local.weight"][0]
    stored = F.packing.TWO_BIT.decode(data[offset + 4:offset + size], 24).reshape(8, 3)
    assert (stored[:, 0] == 1).all() and (stored[:, 1:] == 0).all()  # ATOME01: index 0 = current


def test_atome01_rejects_a_size_that_does_not_match_the_config():
    data = F.write_atome01(random_tensors(TINY), TINY)
    other = F.RoutedBlobConfig(vocab=16, d_model=8, n_layers=3, d_head=4, top_k=2, kernel=3)
    with pytest.raises(F.LegacySizeError):
        F.read_atome01(data, other)
    for bad in (data[:-1], data + b"\0"):
        with pytest.raises(F.LegacySizeError):
            F.read_atome01(bad, TINY)
    with pytest.raises(F.BadMagicError):
        F.read_atome01(b"ATOME02" + data[7:], TINY)


def test_published_944k_blob_read_then_written_is_byte_identical():
    data = published("atome_944k.bin", PUBLISHED_BLOB_SHA256)
    cfg = F.PRESETS["944k"]
    tensors = F.read_atome01(data, cfg)
    assert F.write_atome01(tensors, cfg) == data
    with pytest.raises(F.LegacySizeError):
        F.read_atome01(data, "60k")
    # through our format and back, with every codec
    for codec in ["dense", "2bit"]:
        blob = F.atome01_to_blob(data, cfg, codec=codec)
        assert F.blob_to_atome01(blob) == data
    assert len(F.write_atome02(tensors, cfg)) == 229_975


def test_published_checkpoint_ternarised_equals_the_published_blob():
    """The kit's FP32 shadow weights through our quantiser give the blob's trits and scales bit for bit."""
    import torch
    data = published("atome_944k.bin", PUBLISHED_BLOB_SHA256)
    published("atome_1m_v1.pt", PUBLISHED_PT_SHA256)
    ck = torch.load(shared_interop_dir() / "atome_1m_v1.pt", weights_only=True, map_location="cpu")
    from_pt = F.tensors_from_state_dict(ck["state_dict"], ck["config"])
    assert_tensors_equal(from_pt, F.read_atome01(data, F.as_config(ck["config"])))


# -- the command line ----------------------------------------------------------------------


def test_cli_export_and_inspect(tmp_path, capsys):
    import torch
    from safetensors.numpy import save_file
    torch.manual_seed(1)
    sd = {k: torch.randn(s).numpy() for k, s in F.expected_shapes(TINY).items() if not k.endswith(".scale")}
    src = tmp_path / "model.safetensors"
    save_file({f"model.{k}": v for k, v in sd.items()}, str(src))  # the trainer's key prefix
    out = tmp_path / "m.atmb"
    assert atome_main(["export", str(src), "-o", str(out), "--codec", "rans", "--top-k", "2"]) == 0
    cfg, tensors = F.read_blob(out.read_bytes())
    assert cfg == TINY
    assert_tensors_equal(tensors, F.tensors_from_state_dict(sd, TINY))
    capsys.readouterr()
    assert atome_main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "crc32" in text and ": ok" in text and "bits/trit" in text and "rans" in text
    legacy = tmp_path / "m.bin"
    assert atome_main(["export", str(out), "-o", str(legacy), "--format", "atome01"]) == 0
    assert_tensors_equal(F.read_atome01(legacy.read_bytes(), TINY), tensors)
    bad = tmp_path / "bad.atmb"
    b = bytearray(out.read_bytes())
    b[100] ^= 1
    bad.write_bytes(bytes(b))
    capsys.readouterr()
    assert atome_main(["inspect", str(bad)]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert atome_main(["export", str(bad), "-o", str(tmp_path / "x.atmb")]) == 2   # a damaged file: bad input


@pytest.mark.parametrize("codec", ["dense", "rans", "2bit"])
@pytest.mark.parametrize("float_dtype", ["float32", "float16"])
def test_every_catalogued_damage_raises_its_named_error(codec, float_dtype):
    blob = F.write_blob(TINY, random_tensors(TINY), codec=codec, float_dtype=float_dtype)
    damages = atmb_damages(blob)
    assert len({err for _, err, _ in damages}) >= 10
    for what, err, data in damages:
        with pytest.raises(F.BlobError) as info:
            F.read_blob(data)
        assert type(info.value) is err, what
        assert not F.inspect_blob(data).ok, what


def test_report_helpers_add_up():
    t = random_tensors(TINY, seed=4)
    blob = F.write_blob(TINY, t, codec="rans", float_dtype="float16")
    assert sum(measure.blob_breakdown(blob).values()) == len(blob)
    assert sum(measure.legacy_breakdown(TINY).values()) == F.legacy_size(TINY)
    rows = measure.tensor_report(t, TINY)
    assert [r["name"] for r in rows] == F.trit_weight_names(TINY)
    assert all(r["bits_2bit"] >= 2.0 and 0 <= r["zero_fraction"] <= 1 for r in rows)


def test_cli_inspect_atome01_needs_and_uses_the_config(tmp_path, capsys):
    import json
    legacy = tmp_path / "tiny.bin"
    legacy.write_bytes(F.write_atome01(random_tensors(TINY), TINY))
    assert atome_main(["inspect", str(legacy)]) == 1  # no preset has this size
    assert "LegacySizeError" in capsys.readouterr().out
    cfg = json.dumps({"vocab": 16, "d_model": 8, "n_layers": 2, "d_head": 4, "top_k": 2, "kernel": 3})
    assert atome_main(["inspect", str(legacy), "--config", cfg]) == 0
    text = capsys.readouterr().out
    assert "ATOME01" in text and "2.0000" in text and "no checksum" in text
