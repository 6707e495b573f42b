"""Prompts that name no style, scored read as written and with the WordNet reading of an unseen word.

    python tools/lexical_reading_study.py [EDITOR.safetensors] [--prompts tools/validation_prompts_no_style_word.yaml]

A prompt that holds no word only one style's training prompts use ("make the person look like a ghoul")
gets no edit of any style from an editor without a pretrained language; the editor reads its unseen word
nearest a style's name in WordNet as that name (:meth:`pe3d.prompt_vocabulary.PromptVocabulary.read`).
Per prompt of the validation file (written before any run scored it) and per *test* prompt of the
distilled styles that names no style: mean PSNR over 8 held-out world identities and the input + yaw
-30/+30 views (the protocol of ``tools/prompt_sweep.py``) with the prompt read as written
(``prompt_vocabulary = None``), as the editor reads it, read with the prompt's first word allowed to be
read too (``read_first_word``), and with the style's first training prompt; a Markdown table with the
means (docs/results/quality/lexical_reading.md).
"""

import argparse

import torch
import yaml

from pe3d.evaluation import WorldEvalConfig, build_world_eval_set, model_inputs
from pe3d.evaluation.world import filter_targets, prompt_psnr, style_filter_name
from pe3d.models.editor import load_editor, recorded_styles
from pe3d.prompt_vocabulary import lexical_reading, prompt_words, read_compounds, read_lexically, wordnet_neighbours
from pe3d.styles.discovery import load_named_style
from pe3d.weights import resolve_weights


def read_any_word(prompt: str, vocabulary) -> str:
    """``prompt`` read as :meth:`PromptVocabulary.read` reads it, but with its first word allowed to be read."""
    compound = read_compounds(prompt, vocabulary.words)
    reading = lexical_reading(compound, vocabulary.words, vocabulary.style_words, vocabulary.name_words,
                              wordnet_neighbours(vocabulary.lexicon), read_first_word=True)
    return read_lexically(compound, reading)


def names_no_style(prompt: str, vocabulary) -> bool:
    """Whether ``prompt`` (read through compounds) holds no word only one style's training prompts use."""
    return not any(w in vocabulary.style_words for w in prompt_words(read_compounds(prompt, vocabulary.words)))


@torch.no_grad()
def main(path: str, prompts_file: str) -> None:
    path = resolve_weights(path, "editor_mini")
    editor = load_editor(path).eval()
    vocabulary = editor.prompt_vocabulary
    if vocabulary is None:
        raise SystemExit(f"{path}: records no styles with training prompts; nothing to read through")
    with open(prompts_file, encoding="utf-8") as handle:
        sets = {"validation": yaml.safe_load(handle)}
    sets["test"] = {s: [p for p in load_named_style(s).prompts.test if names_no_style(p, vocabulary)]
                    for s in recorded_styles(path)}
    data = build_world_eval_set(WorldEvalConfig(identities=8, styles=[], novel_pitches_deg=[]))
    names = data.plan.scored
    inputs = model_inputs(data, editor.cfg.prior.encoder.image_size)

    def score(prompt: str, views) -> float:
        return prompt_psnr(editor, inputs, prompt, views, names, data.resolution)

    print("| set | style | prompt | read as | as written | as read | first word read too | first train prompt |")
    print("|---|---|---|---|---|---|---|---|")
    means = {}
    for set_name, by_style in sets.items():
        rows = []
        for style, prompts in by_style.items():
            spec = load_named_style(style)
            views = filter_targets(data.truth, style_filter_name(spec)).views
            train = score(spec.prompts.train[0], views)
            for prompt in prompts:
                read = editor.read_prompt(prompt)
                editor.prompt_vocabulary = None
                written = score(prompt, views)
                editor.prompt_vocabulary = vocabulary
                as_read = score(prompt, views) if read != prompt else written
                any_word = read_any_word(prompt, vocabulary)
                editor.prompt_vocabulary = None  # the text as given
                first_too = as_read if any_word == read else score(any_word, views)
                editor.prompt_vocabulary = vocabulary
                rows.append((written, as_read, first_too, train))
                shown = read if any_word == read else f"{read} (first word read: {any_word})"
                print(f"| {set_name} | {style} | {prompt} | {shown} | {written:.2f} | {as_read:.2f} | {first_too:.2f} | "
                      f"{train:.2f} |", flush=True)
        if rows:
            means[set_name] = [sum(r[i] for r in rows) / len(rows) for i in range(4)] + [len(rows)]
    for set_name, (written, as_read, first_too, train, count) in means.items():
        print(f"| {set_name}, mean of {count} | | | | {written:.2f} | {as_read:.2f} | {first_too:.2f} | {train:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("editor", nargs="?", default="", help="editor .safetensors (default: the shipped mini editor)")
    parser.add_argument("--prompts", default="tools/validation_prompts_no_style_word.yaml",
                        help="YAML of style -> prompts that name no style (default: %(default)s)")
    args = parser.parse_args()
    main(args.editor, args.prompts)
