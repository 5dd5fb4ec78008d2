"""FER-GCD (facial expression category discovery) and its SimGCD baseline.

``model``: backbone + projection + cosine classifier + adversarial head behind gradient reversal;
``losses``: SimGCD's and FER-GCD's losses; ``evaluate``: All/Old/New Hungarian accuracy;
``train``: the ``fer-gcd`` task of ``python -m pyvision train``.
"""
