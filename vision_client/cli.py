"""Command-line client: `vision-ai predict FILE|DIR... [--model mnist|fmnist|auto] [--json]`,
`vision-ai feedback FILE --label L`, `vision-ai models|health`, `vision-ai rollout status`.

One request per file (progress and errors per file), sent by a few threads over one Session.
Exit codes: 0 all classified, 1 some files failed, 2 usage error or service unusable.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import json
import os
import socket
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import requests
from tqdm import tqdm

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"})
RETRYABLE = (429, 503)  # the service sends Retry-After with both
MAX_RETRY_WAIT_S = 10.0
AUTO = "auto"  # --model auto: POST /classify, which picks the model per image
NEITHER = "Neither a digit nor clothing"  # what /classify's declines say (no model took it)


class Fatal(Exception):
    """Stops the whole run: a usage error, or a service that cannot answer any file."""


def expand(args: list[str], recursive: bool = False) -> list[Path]:
    """Files as given; directories become their images (by extension), sorted."""
    paths: list[Path] = []
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in (path.rglob("*") if recursive else path.iterdir())
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
            if not found:
                raise Fatal(f"no images ({' '.join(sorted(IMAGE_EXTS))}) in {arg}")
            paths += found
        elif path.is_file():
            paths.append(path)  # named explicitly: let the service judge the format
        else:
            raise Fatal(f"no such file or directory: {arg}")
    return paths


def _reason(err: BaseException) -> str:
    """The innermost OS-level cause, e.g. 'connection refused'."""
    seen = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror.lower()
        seen = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
        seen = seen if isinstance(seen, BaseException) else None
    return type(err).__name__


def _error(resp: requests.Response) -> dict:
    """The service's `{"error": {code, message}}`, or the best we can make of another body."""
    try:
        detail = resp.json()["error"]
        return {"code": str(detail["code"]), "message": str(detail["message"])}
    except (ValueError, KeyError, TypeError):
        return {"code": f"http_{resp.status_code}",
                "message": resp.text.strip()[:200] or resp.reason or "no message"}


def _request(session: requests.Session, method: str, url: str, timeout: float,
             **kwargs) -> requests.Response:
    try:
        return session.request(method, url, timeout=timeout, **kwargs)
    except requests.ConnectionError as err:  # includes ConnectTimeout
        base = "/".join(url.split("/", 3)[:3])
        raise Fatal(f"cannot reach {base} ({_reason(err)}) — "
                    "is the service running? (make serve)") from None
    except requests.exceptions.InvalidURL as err:
        raise Fatal(f"invalid --url: {err}") from None


def send(session: requests.Session, method: str, url: str, timeout: float,
         retries: int = 2, **kwargs) -> requests.Response:
    """One HTTP call; 429/503 are retried after Retry-After (bounded); down service -> Fatal."""
    for _ in range(retries):
        resp = _request(session, method, url, timeout, **kwargs)
        if resp.status_code not in RETRYABLE:
            return resp
        try:
            wait = float(resp.headers.get("Retry-After", 1))
        except ValueError:  # an HTTP date: not worth parsing for a CLI
            wait = 1.0
        time.sleep(min(max(wait, 0.0), MAX_RETRY_WAIT_S))
    return _request(session, method, url, timeout, **kwargs)


def classify(session: requests.Session, url: str, path: Path, timeout: float) -> dict:
    """One file -> a result row; per-file problems become an `error`, not an exception."""
    try:
        data = path.read_bytes()
        resp = send(session, "POST", url, timeout, files={"file": (path.name, data)})
    except requests.Timeout:
        return _failed(path, "timeout", f"no answer within {timeout:g}s (see --timeout)")
    except requests.RequestException as err:  # before OSError: it is one
        return _failed(path, "request_failed", str(err))
    except OSError as err:
        return _failed(path, "unreadable", f"{err.strerror or err}")
    if resp.ok:
        body = _json(resp, "label", "class_id", "confidence")
        row = {"file": str(path), **{k: body[k] for k in ("label", "class_id", "confidence")},
               "accepted": body.get("accepted", True)}  # older services accept everything
        if "reason" in body:
            row["reason"] = body["reason"]
        if url.endswith("/classify"):
            row["model"] = body.get("model")
        return row
    error = _error(resp)
    if resp.status_code in (401, 404):  # wrong key or model: every other file fails the same
        raise Fatal(error["message"])
    return {"file": str(path), "error": error}


def _json(resp: requests.Response, *keys: str) -> dict | list:
    """A success body; anything unexpected means --url points at something else."""
    try:
        body = resp.json()
        if all(k in body for k in keys):
            return body
    except (ValueError, TypeError):  # not JSON, or JSON of another shape
        pass
    raise Fatal(f"unexpected answer from {resp.url}; is --url this service?")


def _failed(path: Path, code: str, message: str) -> dict:
    return {"file": str(path), "error": {"code": code, "message": message}}


def predict_all(args: argparse.Namespace, paths: list[Path]) -> list[dict]:
    """Bounded concurrency over one Session; results come back in input order."""
    url = f"{args.url}/{'classify' if args.model == AUTO else args.model}"
    results: list[dict] = [{}] * len(paths)
    session = _session(args.api_key, args.concurrency)
    bar = tqdm(total=len(paths), unit="img", file=sys.stderr, leave=False,
               disable=None if len(paths) > 1 else True)  # None: only on a terminal
    with bar, ThreadPoolExecutor(args.concurrency) as pool:
        futures = {pool.submit(classify, session, url, p, args.timeout): i
                   for i, p in enumerate(paths)}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results


def _session(api_key: str | None, threads: int = 1) -> requests.Session:
    session = requests.Session()
    # One pooled connection per worker thread, or urllib3 warns and reconnects.
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=threads)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if api_key:
        session.headers["Authorization"] = f"Bearer {api_key}"
    return session


def declined_messages(args: argparse.Namespace, results: list[dict]) -> None:
    """Give every declined row the words the service uses for it ("No digit found", ...),
    from GET /models, asked only when something was declined."""
    declined = [r for r in results if r.get("accepted") is False]
    if not declined:
        return
    messages = {}
    resp = send(_session(args.api_key), "GET", args.url + "/models", args.timeout)
    if resp.ok:
        messages = {m["name"]: m.get("declined_message") for m in _json(resp)}
    for r in declined:
        model = r.get("model") if args.model == AUTO else args.model
        r["message"] = (messages.get(model) or "Not recognised") if model else NEITHER


def summary(results: list[dict]) -> dict:
    labels = Counter(r["label"] for r in results if "error" not in r and r.get("accepted", True))
    failed = sum("error" in r for r in results)
    declined = sum(r.get("accepted") is False for r in results)
    return {"total": len(results), "ok": len(results) - failed, "failed": failed,
            "declined": declined, "labels": dict(labels.most_common())}


def table(results: list[dict]) -> str:
    """A plain text table, then a summary when there is more than one file or a failure."""
    width = max([len("FILE")] + [len(r["file"]) for r in results])
    lines = [f"{'FILE':<{width}}  {'LABEL':<12}  CONFIDENCE"]
    for r in results:
        row = ("FAILED", "") if "error" in r else (r["label"], f"{r['confidence']:.1%}") \
            if r.get("accepted", True) else (f"{r.get('message', 'Declined')} "
                                             f"({r.get('reason', 'declined')})", "")
        lines.append(f"{r['file']:<{width}}  {row[0]:<12}  {row[1]:>10}".rstrip())
    s = summary(results)
    if s["total"] > 1 or s["failed"]:
        declined = f" ({s['declined']} declined)" if s["declined"] else ""
        lines += ["", f"{s['total']} files: {s['ok']} classified{declined}, {s['failed']} failed"]
        lines += [f"  {label:<12}  {n}" for label, n in s["labels"].items()]
        failures = [r for r in results if "error" in r]
        lines += ["Failures:"] * bool(failures)
        lines += [f"  {r['file']}: {r['error']['message']} ({r['error']['code']})"
                  for r in failures]
    return "\n".join(lines)


def cmd_predict(args: argparse.Namespace) -> int:
    results = predict_all(args, expand(args.files, args.recursive))
    declined_messages(args, results)
    if args.json:
        print(json.dumps({"model": args.model, "results": results,
                          "summary": summary(results)}, indent=2))
    else:
        print(table(results))
    return 1 if any("error" in r for r in results) else 0


def rollout_lines(body: dict) -> list[str]:
    """`vision-ai rollout status` as text: per model its state, the candidate, the window and
    each step of the rollout, oldest first."""
    lines = []
    for name, r in body["models"].items():
        cand = r.get("candidate") or {}
        head = f"{name:<8} {r['state']}"
        if cand:
            head += (f"  candidate {cand['version']} at {cand['traffic']:.0%} against "
                     f"{r.get('stable_version')}")
        lines.append(head + (f"  ({r['progress']})" if r.get("progress") else ""))
        for role, w in (r.get("window") or {}).items():
            p95 = "-" if w["p95_ms"] is None else f"{w['p95_ms']} ms"
            lines.append(f"         {role:<9} {w['answered']} answered, errors "
                         f"{w['error_rate']:.1%}, declined {w['decline_rate']:.1%}, p95 {p95}")
        for e in r.get("events") or []:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["t"]))
            lines.append(f"         {when} {e['event']}: {e['detail']}")
    return lines


def cmd_get(args: argparse.Namespace) -> int:
    """`models`, `health` and `rollout status`: GET one endpoint and show its JSON."""
    path = {"models": "/models", "health": "/healthz", "rollout": "/rollout"}[args.command]
    resp = send(_session(args.api_key), "GET", args.url + path, args.timeout)
    if not resp.ok:
        error = _error(resp)
        print(f"error: {error['message']} ({error['code']})", file=sys.stderr)
        return 1
    body = _json(resp)
    if args.json:
        print(json.dumps(body, indent=2))
    elif args.command == "health":
        print("ok: " + ", ".join(f"{m} {v}" for m, v in body["models"].items()))
    elif args.command == "rollout":
        print("\n".join(rollout_lines(body)))
    else:
        for m in body:
            acc = f"{m['test_accuracy']:.2%}" if m.get("test_accuracy") is not None else "-"
            plan = m.get("rollout") or {}
            out = f" rollout {plan['state']}" if plan.get("state") not in (None, "none") else ""
            print(f"{m['name']:<8} {m['version']}  {m['dataset']:<14} accuracy {acc}{out}")
    return 0


def client_key() -> str:
    """Sent as X-Client-Key: $VISION_CLIENT_KEY, else a stable key for this user on this host
    (no name in it). The service limits corrections per client, and a rollout shows a client
    one version throughout."""
    mine = f"{getpass.getuser()}@{socket.gethostname()}"
    return os.environ.get("VISION_CLIENT_KEY") or hashlib.sha256(mine.encode()).hexdigest()[:16]


def cmd_feedback(args: argparse.Namespace) -> int:
    """`feedback FILE --label L`: the service classifies FILE as it would, then is told the
    right label (or out_of_domain: not of the model's kind) for that very answer."""
    try:
        data = Path(args.file).read_bytes()
    except OSError as err:
        raise Fatal(f"cannot read {args.file}: {err.strerror or err}") from None
    session = _session(args.api_key)
    session.headers["X-Client-Key"] = client_key()
    image = base64.b64encode(data).decode("ascii")
    resp = send(session, "POST", f"{args.url}/{args.model}", args.timeout, json={"base64": image})
    if resp.ok:
        answer = _json(resp, "label", "model_version")
        resp = send(session, "POST", args.url + "/feedback", args.timeout, json={
            "base64": image, "model": args.model, "model_version": answer["model_version"],
            "predicted_label": answer["label"], "label": args.label})
    if not resp.ok:
        error = _error(resp)
        print(f"error: {error['message']} ({error['code']})", file=sys.stderr)
        return 1
    stored = _json(resp, "id", "stored")
    said = f"the model ({args.model} {answer['model_version']}) said {answer['label']!r}, " \
           f"you said {args.label!r}"
    print(f"recorded as #{stored['id']}: {said}" if stored["stored"]
          else f"already recorded as #{stored['id']}: {said}")
    if args.json:
        print(json.dumps({**stored, "answer": answer, "label": args.label}))
    return 0


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default="http://localhost:8000", help="service base URL")
    common.add_argument("--api-key", default=os.environ.get("VISION_API_KEY"),
                        help="sent as 'Authorization: Bearer KEY' (default: $VISION_API_KEY)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    top = argparse.ArgumentParser(prog="vision-ai", description=__doc__.splitlines()[0])
    sub = top.add_subparsers(dest="command", required=True)
    pred = sub.add_parser("predict", parents=[common], help="classify images or directories")
    pred.add_argument("files", nargs="+", metavar="FILE", help="image files or directories")
    pred.add_argument("--model", default="mnist",
                      help="mnist (digits), fmnist (clothing), or auto (the service decides "
                           "per image)")
    pred.add_argument("--recursive", action="store_true", help="descend into subdirectories")
    pred.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    sub.add_parser("models", parents=[common], help="list the served models")
    sub.add_parser("health", parents=[common], help="check that every model is loaded")
    roll = sub.add_parser("rollout", parents=[common],
                          help="each model's rollout: candidate, share, window and steps")
    roll.add_argument("action", choices=["status"], help="status: show it")
    fix = sub.add_parser("feedback", parents=[common],
                         help="tell the service the right label for an image it got wrong")
    fix.add_argument("file", metavar="FILE", help="the image")
    fix.add_argument("--label", required=True,
                     help="the right label (e.g. 7, Sneaker), or out_of_domain: not of the "
                          "model's kind at all")
    fix.add_argument("--model", default="mnist", help="mnist (digits) or fmnist (clothing)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.url = args.url.rstrip("/")
    if not args.url.startswith(("http://", "https://")):
        parser().error(f"--url must start with http:// or https:// (got {args.url!r})")
    if getattr(args, "concurrency", 1) < 1:
        parser().error("--concurrency must be at least 1")
    try:
        commands = {"predict": cmd_predict, "feedback": cmd_feedback}
        return commands.get(args.command, cmd_get)(args)
    except Fatal as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
