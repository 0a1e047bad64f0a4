"""Batched greedy generation against one prompt at a time: the speed-up `answer_accuracy` gets, and whether the
responses are the same.

The graph phase generates each response alone (`generate_response`); measuring accuracy over hundreds of family
prompts uses `generate_responses`, left-padded batches. For the same prompts this prints the seconds of each way
(the baseline, one at a time, measured in the same run), their ratio, and how many responses are identical token for
token (a left-padded batch can differ only where two logits tie to floating-point rounding).

    python bench/generation.py [--model smollm2-135m] [--n 16] [--batch-size 8] [--max-new-tokens 64]
"""
import argparse, json, time

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=16, help="family prompts, mixed families and difficulties")
    ap.add_argument("--batch-size", type=int, default=8, dest="batch_size")
    ap.add_argument("--max-new-tokens", type=int, default=64, dest="max_new_tokens")
    a = ap.parse_args()
    from r1_interp.models.registry import load_model, model_spec
    from r1_interp.models.families import FAMILIES, family_prompts
    from r1_interp.graphs.segments import chat_prompt, generate_response, generate_responses
    model, tok = load_model(a.model)
    per = -(-a.n // len(FAMILIES))
    ps = [p for f in FAMILIES for p in family_prompts(f, per, seed=7)][:a.n]
    texts = [chat_prompt(p.text, tok, model_spec(a.model).thinks) for p in ps]
    generate_response(model, tok, texts[0], 4)                               # warm-up
    t = time.perf_counter(); one = [generate_response(model, tok, x, a.max_new_tokens) for x in texts]
    t_one = time.perf_counter() - t
    t = time.perf_counter(); many = generate_responses(model, tok, texts, a.max_new_tokens, a.batch_size)
    t_many = time.perf_counter() - t
    same = sum(x.response_ids == y.response_ids for x, y in zip(one, many))
    tokens = sum(len(x.response_ids) for x in one)
    print(json.dumps(dict(model=a.model, prompts=len(ps), batch_size=a.batch_size, max_new_tokens=a.max_new_tokens,
                          tokens=tokens, seconds_one_at_a_time=round(t_one, 1), seconds_batched=round(t_many, 1),
                          speedup=round(t_one / t_many, 2), identical_responses=same)))
    print(f"batched generation: {t_one / t_many:.2f}x the speed of one prompt at a time "
          f"({t_one:.1f} s vs {t_many:.1f} s for {len(ps)} prompts); {same} of {len(ps)} responses identical")

if __name__ == "__main__": main()
