"""Links induced from a corpus: a dictionary spinner's missing keys, read with a (scripted) language model."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from normalizer.induce import as_dictionary, dictionary_lines, induce_links
from normalizer.stages.lm import LanguageModel
from normalizer.wordrates import WordRates

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", *"the minister said stated it was over . he then smith spoke".split()]


class ExpectsSaid(torch.nn.Module):
    """A causal LM that expects "said" after "minister" and "he", and "the" elsewhere."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.said = VOCAB.index("said")
        self.speakers = torch.tensor([VOCAB.index(w) for w in ("minister", "he")])

    def forward(self, input_ids, attention_mask=None, **kwargs):
        speaker = torch.isin(input_ids, self.speakers)
        logits = torch.zeros(*input_ids.shape, len(VOCAB))
        logits[..., self.said] = 6.0 * speaker
        logits[..., VOCAB.index("the")] = 4.0 * ~speaker
        return SimpleNamespace(logits=logits)


def scripted_lm() -> LanguageModel:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    return LanguageModel(ExpectsSaid(), tokenizer, device="cpu")


RATES = WordRates(
    total=100_000,
    counts={"the": 5000, "minister": 100, "said": 2000, "it": 1000, "was": 1500, "over": 200, "he": 1000, "then": 300},
)


def test_a_dictionary_spinners_missing_key_is_linked_to_the_word_standing_for_it():
    spun = ["the minister stated it was over . he stated it . then smith stated it ."] * 40
    links = induce_links(scripted_lm(), spun, RATES)
    assert [(link.alternative, link.key) for link in links] == [("stated", "said")]
    (link,) = links
    assert link.key_count == 0 and link.alternative_count == 120 and link.places == 120 and link.predicted > 0.5
    assert dictionary_lines(links) == ["said|stated"]
    assert as_dictionary(links).originals == {"stated": ["said"]}


def test_clean_text_and_names_give_no_links():
    lm = scripted_lm()
    clean = ["the minister said it was over . he said it . then smith said it ."] * 40
    assert induce_links(lm, clean, RATES) == []  # "said" stands as often as news has it
    # "Smith" stands where "said" is expected, "said" never does, and news has no "smith": but it is a name.
    names = ["the minister Smith it was over . then he Smith it ."] * 40
    assert induce_links(lm, names, RATES) == []
    assert [link.alternative for link in induce_links(lm, [t.lower() for t in names], RATES)] == ["smith"]
    assert induce_links(lm, [], RATES) == [] and induce_links(lm, ["", "."], RATES) == []


def test_a_short_text_says_too_little_to_link():
    assert induce_links(scripted_lm(), ["the minister stated it was over ."], RATES) == []


def test_the_harness_counts_one_word_swaps_as_gold_links():
    from evaluation.induce import gold_links

    rows = [
        {"spun": "He stated it, and she stated, within reason.", "original": "He said it, and she said, in reason."}
    ]
    assert gold_links(rows) == {("stated", "said"): 2, ("within", "in"): 1}
