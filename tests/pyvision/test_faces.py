"""pyvision.data.faces: the generator's latent structure and determinism, augmentation, and the
RAF-DB / FER2013 / AffectNet loaders on tiny files the test writes."""

import numpy as np
import pytest
import torch
from PIL import Image

from pyvision.data.faces import (
    EXPRESSIONS,
    FaceGeneratorConfig,
    load_affectnet,
    load_fer2013,
    load_rafdb,
    make_faces,
    random_views,
    render_faces,
    sample_face_params,
)


def test_generator_shapes_determinism_and_long_tail():
    a = make_faces(700, seed=3, config=FaceGeneratorConfig(image_size=24, channels=3))
    b = make_faces(700, seed=3, config=FaceGeneratorConfig(image_size=24, channels=3))
    assert a.images.shape == (700, 3, 24, 24) and a.images.min() >= 0 and a.images.max() <= 1
    torch.testing.assert_close(a.images, b.images)
    counts = torch.bincount(a.labels, minlength=7)
    # RAF-DB proportions: happiness (1) most frequent, fear (4) least
    assert counts.argmax() == EXPRESSIONS.index("happiness")
    assert counts.argmin() == EXPRESSIONS.index("fear")
    assert a.identities.max() < 40 and len(a.params["mouth_open"]) == 700


def test_expression_is_the_only_label_signal():
    cfg0 = FaceGeneratorConfig(intensity=(0.0, 0.0), param_noise=0.0)
    cfg1 = FaceGeneratorConfig(intensity=(1.0, 1.0), param_noise=0.0)
    happy, surprise = torch.full((4,), 1), torch.full((4,), 3)
    imgs = {}
    for name, cfg in (("flat", cfg0), ("full", cfg1)):
        for lab, labels in (("happy", happy), ("surprise", surprise)):
            p = sample_face_params(labels, cfg, torch.Generator().manual_seed(0))
            p.pop("identity")
            imgs[name, lab] = render_faces(p, 32)
    # at zero intensity the label changes nothing (same identity and pose draws)...
    torch.testing.assert_close(imgs["flat", "happy"], imgs["flat", "surprise"])
    # ...at full intensity it changes the face
    assert (imgs["full", "happy"] - imgs["full", "surprise"]).abs().mean() > 0.01
    # each parameter acts where its feature is: mouth opening in the lower half, brows in the upper
    p = sample_face_params(happy, cfg0, torch.Generator().manual_seed(0))
    p.update(roll=torch.zeros(4), shift_x=torch.zeros(4), shift_y=torch.zeros(4))
    base = render_faces(p, 32)
    for name, value, lower in (("mouth_open", 0.8, True), ("brow_raise", 0.1, False)):
        q = dict(p, **{name: torch.full((4,), value)})
        diff = (render_faces(q, 32) - base).abs()
        low, up = diff[..., 16:, :].sum(), diff[..., :16, :].sum()
        assert (low > 5 * up) if lower else (up > 5 * low), name


def test_random_views():
    x = make_faces(6, seed=0).images
    v1 = random_views(x, torch.Generator().manual_seed(1))
    v2 = random_views(x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(v1, v2)
    assert v1.shape == x.shape and not torch.equal(v1, x) and v1.min() >= 0 and v1.max() <= 1
    with pytest.raises(ValueError, match="images"):
        random_views(x[0], torch.Generator())


def _jpg(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((10, 12, 3), value, dtype=np.uint8)).save(path)


def test_rafdb_loader(tmp_path):
    (tmp_path / "EmoLabel").mkdir()
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text(
        "train_00001.jpg 4\ntrain_00002.jpg 7\ntest_0001.jpg 1\n")
    _jpg(tmp_path / "Image/aligned/train_00001_aligned.jpg", 200)
    _jpg(tmp_path / "Image/aligned/train_00002_aligned.jpg", 50)
    ds = load_rafdb(tmp_path, "train", image_size=8, channels=1)
    assert len(ds) == 2 and ds.labels.tolist() == [1, 0]  # happiness, neutral
    x, y = ds[0]
    assert x.shape == (1, 8, 8) and y == 1 and abs(float(x.mean()) - 200 / 255) < 0.02
    assert load_rafdb(tmp_path, "test").labels.tolist() == [3]  # surprise
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_rafdb(tmp_path / "nowhere")
    (tmp_path / "EmoLabel" / "list_patition_label.txt").write_text("train_1.jpg 9\n")
    with pytest.raises(ValueError, match="label 1-7"):
        load_rafdb(tmp_path)


def test_fer2013_loader(tmp_path):
    px = " ".join(["128"] * 2304)
    path = tmp_path / "fer2013.csv"
    path.write_text(f"emotion,pixels,Usage\n0,{px},Training\n3,{px},Training\n6,{px},PublicTest\n")
    data = load_fer2013(path)
    assert data.images.shape == (2, 1, 48, 48) and data.labels.tolist() == [6, 1]  # anger, happiness
    assert float(data.images[0, 0, 0, 0]) == pytest.approx(128 / 255)
    assert load_fer2013(path, usage=None).labels.tolist() == [6, 1, 0]
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_fer2013(tmp_path / "missing.csv")
    path.write_text("emotion,pixels,Usage\n0,1 2 3,Training\n")
    with pytest.raises(ValueError, match="2304"):
        load_fer2013(path)


def test_affectnet_loader(tmp_path):
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir()
    (lists / "training.csv").write_text(
        "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal\n"
        "1/a.jpg,0,0,10,10,,2,0.1,0.2\n1/b.jpg,0,0,10,10,,7,0.1,0.2\n2/c.jpg,0,0,10,10,,6,0,0\n")
    _jpg(tmp_path / "Manually_Annotated_Images/1/a.jpg", 10)
    _jpg(tmp_path / "Manually_Annotated_Images/2/c.jpg", 90)
    ds = load_affectnet(tmp_path, "train", image_size=6)
    assert ds.labels.tolist() == [2, 6]  # contempt (7) dropped
    assert ds[1][0].shape == (3, 6, 6)
    with pytest.raises(FileNotFoundError, match="validation.csv"):
        load_affectnet(tmp_path, "val")
