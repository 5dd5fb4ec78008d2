import pytest
import torch

from pyvision.tokenizer import SimpleTokenizer, default_bpe_path


@pytest.fixture(scope="module")
def tok():
    return SimpleTokenizer()


def test_known_ids(tok):
    # Published CLIP ids: clip.tokenize("a photo of a cat") in OpenAI's README / countless notebooks.
    assert tok("a photo of a cat")[0, :8].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407, 0]
    assert tok.encode("a dog") == [320, 1929]
    assert tok.vocab_size == 49408 and tok.sot == 49406 and tok.eot == 49407


def test_cleaning_and_roundtrip(tok):
    # lower-casing, whitespace collapse and HTML unescaping happen before BPE
    assert tok.encode("A   Photo\n") == tok.encode("a photo")
    assert tok.encode("fish &amp; chips") == tok.encode("fish & chips")
    assert tok.decode(tok.encode("Hello, World! 12 naïve")) == "hello , world ! 1 2 naïve"
    # numbers split into single digits
    assert len(tok.encode("123")) == 3


def test_truncation_keeps_end_token():
    tok = SimpleTokenizer(context_length=6)
    out = tok("one two three four five six seven")
    assert out.shape == (1, 6) and out[0, -1].item() == 49407 and out[0].argmax().item() == 5
    assert tok(["a", "b c"]).dtype == torch.long


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.gz"):
        SimpleTokenizer(tmp_path / "missing.gz")
    with pytest.raises(ValueError, match="context_length"):
        SimpleTokenizer(context_length=1)
    with pytest.raises(TypeError, match="text must be str"):
        SimpleTokenizer().encode(3)
    assert default_bpe_path().is_file()
