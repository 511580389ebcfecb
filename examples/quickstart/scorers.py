"""A `python` scorer for the quickstart: checks that an answer is a single word."""


def one_word(task, output, reference=None):
    words = output.strip().strip(".!").split()
    if len(words) == 1:
        return 1.0, "one word"
    return 0.0, f"expected a single word, got {len(words)} words"
