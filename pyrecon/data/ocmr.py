"""OCMR raw data: ISMRMRD HDF5 files → multi-coil dynamic k-space (frames, coils, ky, kx).

OCMR ships each scan as an ISMRMRD file: ``/dataset/xml`` (the XML header: encoded and
reconstructed matrix sizes, encoding limits) and ``/dataset/data``, a 1-d compound dataset of
acquisitions (one readout line each) with fields ``head`` (the acquisition header: ``flags``,
``number_of_samples``, ``active_channels``, ``center_sample``, ``idx.kspace_encode_step_1`` = ky,
``idx.phase`` = cardiac phase = frame, ``idx.slice``, ``idx.set``, ``idx.repetition``,
``idx.average``, ...), ``traj`` and ``data`` (variable-length float32: the (channels, samples)
complex64 samples as interleaved re, im). The file is read with h5py directly (no dependency on
the ``ismrmrd`` package, whose only use here would be this layout).

Assembly (the same placement as OCMR's own reader ``read_ocmr.m``, written from its description):
acquisitions flagged as noise measurement, navigator, phase correction, dummy scan, feedback or
phase-stabilisation data are skipped; lines with ``ACQ_IS_REVERSE`` are flipped along the readout;
a readout shorter than the encoded kx size (asymmetric echo) is placed so that ``center_sample``
lands on kx = nx_enc // 2; ky rows that no acquisition fills are zero (partial Fourier and
prospective undersampling). Averages are combined per sampled point; the readout oversampling
(encodedSpace x / reconSpace x, 2× in OCMR) is removed by a centred crop in image space along kx
(centred orthonormal 1-d DFTs, so image values inside the crop are kept exactly).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["SKIP_FLAGS", "load_ocmr", "read_ismrmrd_header", "save_ismrmrd"]

# ISMRMRD acquisition flag bit numbers (1-based: flag set ⇔ flags & (1 << (bit - 1))).
ACQ_IS_NOISE_MEASUREMENT = 19
ACQ_IS_REVERSE = 22
ACQ_IS_NAVIGATION_DATA = 23
ACQ_IS_PHASECORR_DATA = 24
ACQ_IS_HPFEEDBACK_DATA = 26
ACQ_IS_DUMMYSCAN_DATA = 27
ACQ_IS_RTFEEDBACK_DATA = 28
ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA = 29
ACQ_IS_PHASE_STABILIZATION_REFERENCE = 30
ACQ_IS_PHASE_STABILIZATION = 31
SKIP_FLAGS = (
    ACQ_IS_NOISE_MEASUREMENT,
    ACQ_IS_NAVIGATION_DATA,
    ACQ_IS_PHASECORR_DATA,
    ACQ_IS_HPFEEDBACK_DATA,
    ACQ_IS_DUMMYSCAN_DATA,
    ACQ_IS_RTFEEDBACK_DATA,
    ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA,
    ACQ_IS_PHASE_STABILIZATION_REFERENCE,
    ACQ_IS_PHASE_STABILIZATION,
)


def _bit(bit: int) -> int:
    return 1 << (bit - 1)


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node: ET.Element | None, *names: str) -> ET.Element | None:
    for name in names:
        if node is None:
            return None
        node = next((c for c in node if _strip(c.tag) == name), None)
    return node


def _int(node: ET.Element | None, *names: str) -> int | None:
    found = _child(node, *names)
    return None if found is None or found.text is None else int(float(found.text))


def _float(node: ET.Element | None, *names: str) -> float | None:
    found = _child(node, *names)
    return None if found is None or found.text is None else float(found.text)


def read_ismrmrd_header(xml: str | bytes) -> dict:
    """The fields of an ISMRMRD XML header that the loader uses (namespace-agnostic), first encoding:
    ``encoded`` / ``recon`` matrix sizes (x, y, z), ``fov_mm`` (encoded x, y, z), the encoding
    limits ``ky_max``, ``ky_center``, ``phases``, ``slices``, ``averages``, ``sets``,
    ``repetitions`` (maximum + 1; None where absent) and ``coils`` (receiverChannels)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise ValueError(f"the ISMRMRD XML header does not parse: {e}") from None
    enc = _child(root, "encoding")
    if enc is None:
        raise ValueError("the ISMRMRD XML header has no <encoding>")
    size = lambda space: tuple(_int(enc, space, "matrixSize", a) for a in "xyz")  # noqa: E731
    lim = _child(enc, "encodingLimits")

    def count(name: str) -> int | None:
        m = _int(lim, name, "maximum")
        return None if m is None else m + 1

    return {
        "encoded": size("encodedSpace"),
        "recon": size("reconSpace"),
        "fov_mm": tuple(_float(enc, "encodedSpace", "fieldOfView_mm", a) for a in "xyz"),
        "ky_max": _int(lim, "kspace_encoding_step_1", "maximum"),
        "ky_center": _int(lim, "kspace_encoding_step_1", "center"),
        "phases": count("phase"),
        "slices": count("slice"),
        "averages": count("average"),
        "sets": count("set"),
        "repetitions": count("repetition"),
        "coils": _int(root, "acquisitionSystemInformation", "receiverChannels"),
    }


def _read_file(path: Path) -> tuple[np.ndarray, str]:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{str(path)!r} is not an ISMRMRD file (not HDF5: {e})") from None
    with f:
        ds = f.get("dataset")
        data = ds.get("data") if isinstance(ds, h5py.Group) else None
        names = set(data.dtype.names or ()) if isinstance(data, h5py.Dataset) else set()
        if not {"head", "data"} <= names:
            raise ValueError(
                f"{str(path)!r} is not an ISMRMRD file: expected a compound dataset /dataset/data with "
                f"fields head, data; top-level keys {sorted(f)}"
            )
        if "xml" not in ds:
            raise ValueError(f"{str(path)!r}: the ISMRMRD file has no XML header /dataset/xml")
        xml = ds["xml"][()]
        acqs = data[()]
    if isinstance(xml, np.ndarray):
        xml = xml.reshape(-1)[0]
    if isinstance(xml, bytes):
        xml = xml.decode()
    return acqs, xml


def _ifftc(k: np.ndarray, axis: int) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(k, axes=axis), axis=axis, norm="ortho"), axes=axis)


def _fftc(x: np.ndarray, axis: int) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(x, axes=axis), axis=axis, norm="ortho"), axes=axis)


def load_ocmr(path: str | os.PathLike, *, slice_index: int = 0, average: str | int = "mean",
              set_index: int = 0) -> tuple[Tensor, dict]:
    """Read one slice of an OCMR / ISMRMRD cine scan as k-space (frames, coils, ky, kx).

    Frames are ``idx.phase`` (cardiac phases); a scan with a single phase but several repetitions
    (real-time series) uses ``idx.repetition`` as frames instead; otherwise repetition 0.

    Args:
        path: a local ISMRMRD .h5 file.
        slice_index: which ``idx.slice``.
        average: ``"mean"`` — per k-space point, the mean over the averages that sampled it; or an
            int: that ``idx.average`` only.
        set_index: which ``idx.set``.

    Returns: ``(kspace, info)``: complex64 (frames, coils, ky, kx) with kx = reconSpace x (readout
    oversampling removed) and zeros at unsampled ky; ``info`` with ``sampled`` (bool (frames, ky)
    tensor: rows holding data), ``fully_sampled`` (every frame samples the same ky rows, and those
    form one contiguous block: full or partial-Fourier sampling; False for prospectively
    undersampled or parallel-imaging-accelerated scans), ``oversampling`` (encoded / recon x),
    ``encoded``, ``recon``, ``fov_mm``, ``ky_center``, ``frames_from`` ("phase" or "repetition"),
    ``n_averages``, ``n_slices``, ``skipped`` (acquisitions skipped by flag) and ``path``.

    Raises: FileNotFoundError naming a missing path; ValueError for a file that is not ISMRMRD
    (names it), an index out of range or an unsupported layout (3D encodings).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OCMR / ISMRMRD file not found: {str(path)!r}")
    if not (average == "mean" or (isinstance(average, int) and not isinstance(average, bool))):
        raise ValueError(f"average must be 'mean' or an int index, got {average!r}")
    acqs, xml = _read_file(path)
    hdr = read_ismrmrd_header(xml)
    head = acqs["head"]
    flags = head["flags"].astype(np.uint64)
    skip_mask = np.uint64(sum(_bit(b) for b in SKIP_FLAGS))
    keep = (flags & skip_mask) == 0
    skipped = int((~keep).sum())
    idx = head["idx"]
    if np.any(idx["kspace_encode_step_2"][keep] != 0) or (hdr["encoded"][2] or 1) > 1:
        raise ValueError(f"{str(path)!r}: 3D encodings (kspace_encode_step_2 / z > 1) are not supported")
    n_slices = int(idx["slice"][keep].max()) + 1 if keep.any() else 0
    if not 0 <= slice_index < n_slices:
        raise ValueError(f"slice_index must be in [0, {n_slices}), got {slice_index}")
    n_sets = int(idx["set"][keep].max()) + 1
    if not 0 <= set_index < n_sets:
        raise ValueError(f"set_index must be in [0, {n_sets}), got {set_index}")
    sel = keep & (idx["slice"] == slice_index) & (idx["set"] == set_index)
    phases, reps = idx["phase"][sel].astype(int), idx["repetition"][sel].astype(int)
    if phases.max() == 0 and reps.max() > 0:
        frames_from, frame_of = "repetition", reps
    else:
        frames_from, frame_of = "phase", phases
        sel &= idx["repetition"] == 0
        frame_of = idx["phase"][sel].astype(int)
    avg = idx["average"][sel].astype(int)
    n_averages = int(avg.max()) + 1
    if average != "mean":
        if not 0 <= average < n_averages:
            raise ValueError(f"average must be 'mean' or in [0, {n_averages}), got {average}")
        frame_of = frame_of[avg == average]
        sel_idx = np.flatnonzero(sel)[avg == average]
    else:
        sel_idx = np.flatnonzero(sel)

    coils = {int(c) for c in head["active_channels"][sel_idx]}
    if len(coils) != 1:
        raise ValueError(f"{str(path)!r}: acquisitions have different active_channels {sorted(coils)}")
    n_coils = coils.pop()
    ky = idx["kspace_encode_step_1"][sel_idx].astype(int)
    n_ky = (hdr["ky_max"] + 1) if hdr["ky_max"] is not None else int(ky.max()) + 1
    n_ky = max(n_ky, int(ky.max()) + 1)
    nx_enc = hdr["encoded"][0] or int(head["number_of_samples"][sel_idx].max())
    nx_rec = hdr["recon"][0] or nx_enc
    n_frames = int(frame_of.max()) + 1

    acc = np.zeros((n_frames, n_coils, n_ky, nx_enc), dtype=np.complex128)
    count = np.zeros((n_frames, n_ky), dtype=np.int64)
    for j, t, line in zip(sel_idx, frame_of, ky, strict=True):
        h = head[j]
        ns = int(h["number_of_samples"])
        samples = np.asarray(acqs["data"][j], dtype=np.float32).view(np.complex64).reshape(n_coils, ns)
        if int(h["flags"]) & _bit(ACQ_IS_REVERSE):
            samples = samples[:, ::-1]
        start = nx_enc // 2 - int(h["center_sample"]) if ns < nx_enc else 0
        if start < 0 or start + ns > nx_enc:
            raise ValueError(
                f"{str(path)!r}: a readout of {ns} samples centred at {int(h['center_sample'])} does not "
                f"fit the encoded kx size {nx_enc}"
            )
        acc[t, :, line, start : start + ns] += samples
        count[t, line] += 1
    kspace = acc / np.maximum(count, 1)[:, None, :, None]
    if nx_rec < nx_enc:  # remove readout oversampling: centred crop in image space along kx
        lo = (nx_enc - nx_rec) // 2
        kspace = _fftc(_ifftc(kspace, -1)[..., lo : lo + nx_rec], -1)
    sampled = count > 0
    rows = sampled.any(0)
    filled = np.flatnonzero(rows)
    contiguous = filled.size > 0 and filled[-1] - filled[0] + 1 == filled.size
    info = {
        "sampled": torch.from_numpy(sampled),
        "fully_sampled": bool(contiguous and (sampled == rows[None]).all()),
        "oversampling": nx_enc / nx_rec,
        "encoded": hdr["encoded"],
        "recon": hdr["recon"],
        "fov_mm": hdr["fov_mm"],
        "ky_center": hdr["ky_center"],
        "frames_from": frames_from,
        "n_averages": n_averages,
        "n_slices": n_slices,
        "skipped": skipped,
        "path": str(path),
    }
    return torch.from_numpy(np.ascontiguousarray(kspace.astype(np.complex64))), info


def _acquisition_dtype():
    import h5py

    counters = [("kspace_encode_step_1", "<u2"), ("kspace_encode_step_2", "<u2"), ("average", "<u2"),
                ("slice", "<u2"), ("contrast", "<u2"), ("phase", "<u2"), ("repetition", "<u2"),
                ("set", "<u2"), ("segment", "<u2"), ("user", "<u2", (8,))]
    vec3 = ("<f4", (3,))
    head = [("version", "<u2"), ("flags", "<u8"), ("measurement_uid", "<u4"), ("scan_counter", "<u4"),
            ("acquisition_time_stamp", "<u4"), ("physiology_time_stamp", "<u4", (3,)),
            ("number_of_samples", "<u2"), ("available_channels", "<u2"), ("active_channels", "<u2"),
            ("channel_mask", "<u8", (16,)), ("discard_pre", "<u2"), ("discard_post", "<u2"),
            ("center_sample", "<u2"), ("encoding_space_ref", "<u2"), ("trajectory_dimensions", "<u2"),
            ("sample_time_us", "<f4"), ("position", *vec3), ("read_dir", *vec3), ("phase_dir", *vec3),
            ("slice_dir", *vec3), ("patient_table_position", *vec3), ("idx", counters),
            ("user_int", "<i4", (8,)), ("user_float", "<f4", (8,))]
    vlen = h5py.vlen_dtype(np.dtype("float32"))
    return np.dtype([("head", head), ("traj", vlen), ("data", vlen)])


def save_ismrmrd(path: str | os.PathLike, kspace: Tensor | np.ndarray, *, oversampling: int = 1) -> Path:
    """Write fully sampled k-space (frames, coils, ky, kx) as a minimal single-slice ISMRMRD file
    (one acquisition per (frame, ky), frames as ``idx.phase``; a schema-valid header with 1 mm
    pixels) that :func:`load_ocmr` reads back.

    ``oversampling`` = 2 stores the readout 2× oversampled the way scanners do (the image zero-padded
    to 2·kx along x, encodedSpace x = 2·reconSpace x), so the loader's crop is exercised. For tests
    and for handing phantom data to tools that read ISMRMRD.
    """
    import h5py

    k = kspace.numpy() if isinstance(kspace, Tensor) else np.asarray(kspace)
    if k.ndim != 4 or not np.iscomplexobj(k):
        raise ValueError(f"kspace must be complex (frames, coils, ky, kx), got {k.dtype} {k.shape}")
    if oversampling not in (1, 2):
        raise ValueError(f"oversampling must be 1 or 2, got {oversampling!r}")
    t, c, ny, nx = k.shape
    nx_enc = nx * oversampling
    if oversampling > 1:
        img = np.zeros((t, c, ny, nx_enc), np.complex128)
        lo = (nx_enc - nx) // 2
        img[..., lo : lo + nx] = _ifftc(k.astype(np.complex128), -1)
        k = _fftc(img, -1)
    dtype = _acquisition_dtype()
    recs = np.zeros(t * ny, dtype=dtype)
    for i, (ti, ky) in enumerate(np.ndindex(t, ny)):
        h = recs["head"][i : i + 1]
        h["version"], h["number_of_samples"], h["center_sample"] = 1, nx_enc, nx_enc // 2
        h["active_channels"], h["available_channels"] = c, c
        h["idx"]["kspace_encode_step_1"], h["idx"]["phase"] = ky, ti
        recs["traj"][i] = np.zeros(0, np.float32)
        recs["data"][i] = np.ascontiguousarray(k[ti, :, ky].astype(np.complex64)).view(np.float32).reshape(-1)
    size = lambda x: (f"<matrixSize><x>{x}</x><y>{ny}</y><z>1</z></matrixSize>"  # noqa: E731
                      f"<fieldOfView_mm><x>{x}</x><y>{ny}</y><z>1</z></fieldOfView_mm>")  # 1 mm pixels
    lim = lambda n, m: f"<{n}><minimum>0</minimum><maximum>{m}</maximum><center>{m // 2}</center></{n}>"  # noqa: E731
    xml = ('<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
           f"<acquisitionSystemInformation><receiverChannels>{c}</receiverChannels>"
           "</acquisitionSystemInformation><experimentalConditions>"
           "<H1resonanceFrequency_Hz>63500000</H1resonanceFrequency_Hz></experimentalConditions>"
           f"<encoding><encodedSpace>{size(nx_enc)}</encodedSpace>"
           f"<reconSpace>{size(nx)}</reconSpace><encodingLimits>"
           f"{lim('kspace_encoding_step_1', ny - 1)}{lim('phase', t - 1)}{lim('slice', 0)}"
           "</encodingLimits><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>")
    path = Path(path)
    with h5py.File(path, "w") as f:
        g = f.create_group("dataset")
        g.create_dataset("xml", (1,), dtype=h5py.string_dtype())[0] = xml
        g.create_dataset("data", data=recs)
    return path
