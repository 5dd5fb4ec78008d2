"""pyrecon.data.ocmr.load_ocmr on tiny ISMRMRD files written here with h5py in the ISMRMRD layout
(/dataset/xml + /dataset/data of (head, traj, data) acquisitions) from a known k-space array."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from pyrecon.data.ocmr import load_ocmr, read_ismrmrd_header, save_ismrmrd

# The ISMRMRD acquisition-header layout (the format's C struct, field by field).
_COUNTERS = np.dtype([("kspace_encode_step_1", "<u2"), ("kspace_encode_step_2", "<u2"), ("average", "<u2"),
                      ("slice", "<u2"), ("contrast", "<u2"), ("phase", "<u2"), ("repetition", "<u2"),
                      ("set", "<u2"), ("segment", "<u2"), ("user", "<u2", (8,))])
_HEAD = np.dtype([("version", "<u2"), ("flags", "<u8"), ("measurement_uid", "<u4"), ("scan_counter", "<u4"),
                  ("acquisition_time_stamp", "<u4"), ("physiology_time_stamp", "<u4", (3,)),
                  ("number_of_samples", "<u2"), ("available_channels", "<u2"), ("active_channels", "<u2"),
                  ("channel_mask", "<u8", (16,)), ("discard_pre", "<u2"), ("discard_post", "<u2"),
                  ("center_sample", "<u2"), ("encoding_space_ref", "<u2"), ("trajectory_dimensions", "<u2"),
                  ("sample_time_us", "<f4"), ("position", "<f4", (3,)), ("read_dir", "<f4", (3,)),
                  ("phase_dir", "<f4", (3,)), ("slice_dir", "<f4", (3,)),
                  ("patient_table_position", "<f4", (3,)), ("idx", _COUNTERS), ("user_int", "<i4", (8,)),
                  ("user_float", "<f4", (8,))])
_VLEN = h5py.vlen_dtype(np.dtype("float32"))
_ACQ = np.dtype([("head", _HEAD), ("traj", _VLEN), ("data", _VLEN)])

NOISE, REVERSE, NAVIGATOR = 1 << 18, 1 << 21, 1 << 22


def _xml(nx_enc, nx_rec, ny, phases, slices=1, averages=1, ky_max=None):
    ky_max = ny - 1 if ky_max is None else ky_max
    lim = lambda name, m: f"<{name}><minimum>0</minimum><maximum>{m}</maximum><center>0</center></{name}>"  # noqa: E731
    return (
        '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
        "<acquisitionSystemInformation><receiverChannels>2</receiverChannels></acquisitionSystemInformation>"
        f"<encoding><encodedSpace><matrixSize><x>{nx_enc}</x><y>{ny}</y><z>1</z></matrixSize>"
        "<fieldOfView_mm><x>600</x><y>300</y><z>8</z></fieldOfView_mm></encodedSpace>"
        f"<reconSpace><matrixSize><x>{nx_rec}</x><y>{ny}</y><z>1</z></matrixSize>"
        "<fieldOfView_mm><x>300</x><y>300</y><z>8</z></fieldOfView_mm></reconSpace>"
        "<encodingLimits>"
        f"<kspace_encoding_step_1><minimum>0</minimum><maximum>{ky_max}</maximum><center>{ny // 2}</center>"
        "</kspace_encoding_step_1>"
        + lim("phase", phases - 1) + lim("slice", slices - 1) + lim("average", averages - 1)
        + "</encodingLimits><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
    )


def _acq(samples, *, ky=0, phase=0, slc=0, avg=0, rep=0, flags=0, center=None):
    """One acquisition record: samples complex (coils, n)."""
    rec = np.zeros(1, dtype=_ACQ)
    h = rec["head"][0:1]
    coils, n = samples.shape
    h["version"], h["flags"] = 1, flags
    h["number_of_samples"], h["active_channels"], h["available_channels"] = n, coils, coils
    h["center_sample"] = n // 2 if center is None else center
    for k, v in dict(kspace_encode_step_1=ky, phase=phase, slice=slc, average=avg, repetition=rep).items():
        h["idx"][k] = v
    rec["head"][0] = h[0]
    rec["traj"][0] = np.zeros(0, np.float32)
    rec["data"][0] = np.ascontiguousarray(samples.astype(np.complex64)).view(np.float32).reshape(-1)
    return rec[0]


def _write(path, records, xml):
    with h5py.File(path, "w") as f:
        g = f.create_group("dataset")
        x = g.create_dataset("xml", (1,), dtype=h5py.string_dtype())
        x[0] = xml
        d = g.create_dataset("data", (len(records),), dtype=_ACQ)
        for i, r in enumerate(records):
            d[i] = r


def _fftc(x, axis=-1):
    return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(x, axes=axis), axis=axis, norm="ortho"), axes=axis)


def _ifftc(k, axis=-1):
    return np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(k, axes=axis), axis=axis, norm="ortho"), axes=axis)


def _cplx(rng, *shape):
    return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)


def _oversampled(k, rng):
    """k (T, C, ky, nx) → (T, C, ky, 2nx) whose centred image-space crop along kx gives back k."""
    t, c, ny, nx = k.shape
    img = _cplx(rng, t, c, ny, 2 * nx)  # anything outside the field of view
    img[..., nx // 2 : nx // 2 + nx] = _ifftc(k.astype(np.complex128))
    return _fftc(img)


@pytest.fixture
def scan():
    rng = np.random.default_rng(0)
    return _cplx(rng, 3, 2, 6, 8), rng  # (frames, coils, ky, kx)


def test_fully_sampled_with_noise_navigator_reverse_and_oversampling(tmp_path, scan):
    k, rng = scan
    k2 = _oversampled(k, rng)
    recs = [_acq(_cplx(rng, 2, 16), flags=NOISE), _acq(_cplx(rng, 2, 32), flags=NOISE)]
    for t in range(3):
        for ky in range(6):
            if (t + ky) % 2:  # a readout acquired backwards is stored flipped
                recs.append(_acq(k2[t, :, ky, ::-1], ky=ky, phase=t, flags=REVERSE))
            else:
                recs.append(_acq(k2[t, :, ky], ky=ky, phase=t))
        recs.append(_acq(_cplx(rng, 2, 16), ky=0, phase=t, flags=NAVIGATOR))  # junk on ky 0
    path = tmp_path / "fs_scan.h5"
    _write(path, recs, _xml(16, 8, 6, 3))
    out, info = load_ocmr(path)
    assert out.dtype == torch.complex64 and out.shape == (3, 2, 6, 8)
    np.testing.assert_allclose(out.numpy(), k, rtol=0, atol=2e-6)
    assert info["fully_sampled"] and bool(info["sampled"].all()) and info["sampled"].shape == (3, 6)
    assert info["oversampling"] == 2 and info["skipped"] == 5 and info["frames_from"] == "phase"
    assert info["fov_mm"] == (600.0, 300.0, 8.0)


def test_undersampled_zero_fill_and_sampled_mask(tmp_path, scan):
    k, _ = scan
    rng = np.random.default_rng(1)
    take = rng.random((3, 6)) < 0.5
    take[:, 3] = True  # a centre line in every frame
    recs = [_acq(k[t, :, ky], ky=ky, phase=t) for t in range(3) for ky in range(6) if take[t, ky]]
    path = tmp_path / "us_scan.h5"
    _write(path, recs, _xml(8, 8, 6, 3))
    out, info = load_ocmr(path)
    np.testing.assert_array_equal(info["sampled"].numpy(), take)
    np.testing.assert_array_equal(out.numpy(), k * take[:, None, :, None])
    assert not info["fully_sampled"] and info["oversampling"] == 1


def test_partial_fourier_counts_as_fully_sampled(tmp_path, scan):
    k, _ = scan
    recs = [_acq(k[t, :, ky], ky=ky, phase=t) for t in range(3) for ky in range(2, 6)]
    path = tmp_path / "pf.h5"
    _write(path, recs, _xml(8, 8, 6, 3))
    out, info = load_ocmr(path)
    assert info["fully_sampled"] and out.shape == (3, 2, 6, 8)
    assert not out[:, :, :2].any()
    np.testing.assert_array_equal(out[:, :, 2:].numpy(), k[:, :, 2:])


def test_asymmetric_echo_is_placed_by_center_sample(tmp_path, scan):
    k, _ = scan
    # readouts of 6 of 8 samples, kx 2..7 acquired: kx = 4 (the centre) is sample 2
    recs = [_acq(k[t, :, ky, 2:], ky=ky, phase=t, center=2) for t in range(3) for ky in range(6)]
    path = tmp_path / "asym.h5"
    _write(path, recs, _xml(8, 8, 6, 3))
    out, _ = load_ocmr(path)
    expected = k.copy()
    expected[..., :2] = 0
    np.testing.assert_array_equal(out.numpy(), expected)


def test_averages_slices_and_repetitions_as_frames(tmp_path, scan):
    k, rng = scan
    k_b, k_s = _cplx(rng, *k.shape), _cplx(rng, *k.shape)
    recs = []
    for t in range(3):
        for ky in range(6):
            recs.append(_acq(k[t, :, ky], ky=ky, phase=t, avg=0))
            if ky != 1:  # the second average misses ky = 1: its mean is the first average alone
                recs.append(_acq(k_b[t, :, ky], ky=ky, phase=t, avg=1))
            recs.append(_acq(k_s[t, :, ky], ky=ky, phase=t, slc=1))
    path = tmp_path / "avg.h5"
    _write(path, recs, _xml(8, 8, 6, 3, slices=2, averages=2))
    mean, info = load_ocmr(path)
    expected = (k.astype(np.complex128) + k_b) / 2
    expected[:, :, 1] = k[:, :, 1]
    np.testing.assert_allclose(mean.numpy(), expected, rtol=0, atol=1e-6)
    assert info["n_averages"] == 2 and info["n_slices"] == 2
    np.testing.assert_array_equal(load_ocmr(path, average=1)[0][:, :, 2:].numpy(), k_b[:, :, 2:])
    np.testing.assert_array_equal(load_ocmr(path, slice_index=1)[0].numpy(), k_s)
    with pytest.raises(ValueError, match="slice_index"):
        load_ocmr(path, slice_index=2)
    with pytest.raises(ValueError, match="average"):
        load_ocmr(path, average=2)
    # a real-time series: one phase, frames along repetitions
    rt = tmp_path / "rt.h5"
    _write(rt, [_acq(k[t, :, ky], ky=ky, rep=t) for t in range(3) for ky in range(6)], _xml(8, 8, 6, 1))
    out, info = load_ocmr(rt)
    assert info["frames_from"] == "repetition"
    np.testing.assert_array_equal(out.numpy(), k)


def test_errors(tmp_path):
    missing = tmp_path / "nowhere" / "fs_0001_1_5T.h5"
    with pytest.raises(FileNotFoundError, match="fs_0001_1_5T.h5"):
        load_ocmr(missing)
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["kspace"] = np.zeros((2, 2, 4, 4), np.complex64)
    with pytest.raises(ValueError, match="not an ISMRMRD file"):
        load_ocmr(plain)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="not an ISMRMRD file"):
        load_ocmr(text)
    with pytest.raises(ValueError, match="XML header"):
        read_ismrmrd_header("<ismrmrdHeader")


def test_header_fields():
    hdr = read_ismrmrd_header(_xml(16, 8, 6, 3, slices=2).encode())
    assert hdr["encoded"] == (16, 6, 1) and hdr["recon"] == (8, 6, 1)
    assert hdr["phases"] == 3 and hdr["slices"] == 2 and hdr["coils"] == 2 and hdr["ky_center"] == 3


@pytest.mark.parametrize("oversampling", [1, 2])
def test_save_ismrmrd_round_trip(tmp_path, scan, oversampling):
    k, _ = scan
    path = save_ismrmrd(tmp_path / "w.h5", torch.from_numpy(k), oversampling=oversampling)
    with h5py.File(path) as f:  # the layout the independent writer above uses
        assert f["dataset/data"].dtype["head"] == _HEAD and f["dataset/data"].shape == (18,)
    out, info = load_ocmr(path)
    np.testing.assert_allclose(out.numpy(), k, rtol=0, atol=2e-6)
    assert info["fully_sampled"] and info["oversampling"] == oversampling
    with pytest.raises(ValueError, match="kspace must be complex"):
        save_ismrmrd(tmp_path / "x.h5", k.real)
