"""The bench's results as a text table (stdout); the JSON document is the result itself."""

from __future__ import annotations

from typing import Any

from stages.table import CLASSIFY, GENERATE_HEATMAPS


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(reference: float | None, ours: float | None) -> str:
    if not reference or not ours:
        return "-"
    return f"{reference / ours:.2f}x"


def format_report(result: dict[str, Any]) -> str:
    """A fixed-width summary of `result` for people."""
    machine, settings = result["machine"], result["settings"]
    lines = [
        f"bcd bench ({result['mode']}) on {machine['cpu']}: {machine['cores']} cores, "
        f"{machine['threads']} threads, torch {machine['torch']}, {machine['date']}",
        f"exam {settings['exam']}: {settings['images']} images, classify "
        f"{settings['epochs']} epochs x 2 models; weights: {settings['weights']}",
    ]
    if "stages" in result:
        lines += _stage_lines(result)
        lines += _network_lines(result)
    if result.get("fast"):
        lines += _fast_lines(result)
    if result.get("reference"):
        lines += _reference_lines(result)
    if result.get("scaling"):
        lines += _scaling_lines(result["scaling"])
    if result.get("gpu"):
        lines += _gpu_lines(result["gpu"], result.get("stages", {}))
    for part in result.get("warm_workers", {}).values():
        lines += _warm_lines(part)
    if result.get("busy_cpu"):
        lines += _busy_lines(result["busy_cpu"])
    return "\n".join(lines)


def _warm_lines(part: dict[str, Any]) -> list[str]:
    if "skipped" in part:
        return ["", f"warm workers: {part['skipped']}"]
    device = part.get("name", part["device"])
    lines = [
        "",
        f"warm workers on {device}: {part['exams']} exams (copies of {part['exam']}), one "
        f"batched process against one process per exam; {part['threads']} threads, "
        f"classify {part['epochs']} epochs",
        f"  {'stage':<18}{'precision':>10}{'start-up s':>12}{'steady s/exam':>15}"
        f"{'exams/h':>9}{'batched s':>11}{'unbatched s':>13}{'target s':>10}  target  identical",
    ]
    for precision, rows in part["precisions"].items():
        for stage, row in rows.items():
            lines.append(
                f"  {stage:<18}{precision:>10}{_num(row['startup_s'], 2):>12}"
                f"{_num(row['steady_s_per_exam'], 2):>15}{_num(row['exams_per_hour'], 0):>9}"
                f"{_num(row['batched_s'], 2):>11}{_num(row['unbatched_s'], 2):>13}"
                f"{_num(row['target_s'], 2):>10}  {'met' if row['target_met'] else 'not met':<8}"
                f"{'yes' if row['identical'] else 'NO'}"
            )
    lines.append(
        "  target: batched <= unbatched - (exams - 1) x start-up, +5%; exams/h: per worker "
        "at steady state; identical: the outputs, byte for byte"
    )
    return lines


def _deviation_line(deviation: dict[str, Any], against: str) -> str:
    return (
        f"  deviation from {against} on {deviation['exam']}: heatmaps max "
        f"{deviation['heatmap_max_abs']:.2e}, mean {deviation['heatmap_mean_abs']:.2e}; "
        f"predictions max {deviation['prediction_max_abs']:.2e}"
    )


def _gpu_lines(gpu: dict[str, Any], cpu_stages: dict[str, Any]) -> list[str]:
    lines = ["", f"GPU {gpu['name']} (model stages; one process per stage, start-up included):"]
    fast = gpu.get("fast", {})
    fast_rows = {f"{name} bf16": row for name, row in fast.get("stages", {}).items()}
    rows = {**gpu["stages"], **fast_rows}
    for name, row in rows.items():
        stage = name.split()[0]
        rate = f", {_num(row['patches_per_s'], 1)} patches/s" if "patches_per_s" in row else ""
        lines.append(
            f"  {name:<24}{_num(row['seconds']):>7} s {_num(row['peak_rss_mib'], 0):>7} MiB{rate}"
            f"; vs CPU exact {_ratio(cpu_stages.get(stage, {}).get('seconds'), row['seconds'])}"
        )
    if gpu.get("deviation_from_cpu"):
        lines.append(_deviation_line(gpu["deviation_from_cpu"], "the CPU run (fp32)"))
    if fast.get("deviation"):
        lines.append(_deviation_line(fast["deviation"], "exact (bf16)"))
    return lines


def _reference_stages(result: dict[str, Any]) -> dict[str, Any]:
    stages: dict[str, Any] = (result.get("reference") or {}).get("stages", {})
    return stages


def _stage_lines(result: dict[str, Any]) -> list[str]:
    ref_stages = _reference_stages(result)
    lines = [
        "",
        f"{'stage (CPU, fp32)':<20}{'ours s':>9}{'img/s':>8}{'peak MiB':>10}{'spec':>6}"
        f"{'NYU s':>9}{'NYU MiB':>9}{'speed-up':>10}",
    ]
    rows = {**result["stages"], "end to end": result["end_to_end"]}
    ref_rows = {**ref_stages, "end to end": (result.get("reference") or {}).get("end_to_end", {})}
    for name, row in rows.items():
        ref = ref_rows.get(name, {})
        lines.append(
            f"{name:<20}{_num(row['seconds']):>9}{_num(row.get('images_per_s'), 2):>8}"
            f"{_num(row['peak_rss_mib'], 0):>10}{row.get('spec_memory') or '-':>6}"
            f"{_num(ref.get('seconds')):>9}{_num(ref.get('peak_rss_mib'), 0):>9}"
            f"{_ratio(ref.get('seconds'), row['seconds']):>10}"
        )
    heatmaps = result["stages"][GENERATE_HEATMAPS]
    lines.append(
        f"  heatmaps: {heatmaps['patches']} patches, {heatmaps['background_skipped']} "
        f"all-background ones skipped; {_num(heatmaps['patches_per_s'], 2)} patches/s"
        f" ({_num(heatmaps['scored_per_s'], 2)} run through the network per s)"
    )
    lines.append(f"  end to end = {' + '.join(result['end_to_end']['stages'])}")
    cached = result.get("cached_conversion")
    if cached:
        row, ref = cached[GENERATE_HEATMAPS], ref_rows.get(GENERATE_HEATMAPS, {})
        lines.append(
            f"  each later datum of a worker (OpenVINO conversion cached): generate_heatmaps "
            f"{_num(row['seconds'])} s ({_num(cached['saved_s'])} s less, "
            f"{_ratio(ref.get('seconds'), row['seconds'])} NYU's), end to end "
            f"{_num(cached['end_to_end_seconds'])} s "
            f"({_ratio(ref_rows['end to end'].get('seconds'), cached['end_to_end_seconds'])}); "
            f"same bytes: {'yes' if cached['identical'] else 'NO'}"
        )
        on_openvino = cached["classify_openvino"]
        lines.append(
            f"  classify on OpenVINO (auto: torch, {_num(rows[CLASSIFY]['seconds'])} s): "
            f"converting {_num(on_openvino['converting']['seconds'])} s, "
            f"{_num(on_openvino['converting']['peak_rss_mib'], 0)} MiB; cached "
            f"{_num(on_openvino['cached']['seconds'])} s, "
            f"{_num(on_openvino['cached']['peak_rss_mib'], 0)} MiB; predictions within "
            f"{on_openvino['prediction_max_abs_vs_torch']:.1e} of torch's"
        )
    return lines


def _network_lines(result: dict[str, Any]) -> list[str]:
    network, peak = result["network"], result["peak_gflops"]
    heatmaps = result["stages"][GENERATE_HEATMAPS]
    lines = [
        "",
        f"patch DenseNet-121: {network['gflop_per_patch']:.2f} GFLOP/patch; this CPU's matmul "
        f"peak: fp32 {_num(peak.get('fp32'), 0)} GFLOP/s, bf16 {_num(peak.get('bf16'), 0)} "
        "GFLOP/s",
        f"  generate_heatmaps stage (fp32), whole process: "
        f"{_num(heatmaps['gflops_effective'], 0)} GFLOP/s",
    ]
    ref_heatmaps = _reference_stages(result).get(GENERATE_HEATMAPS, {})
    if "gflops_effective" in ref_heatmaps:
        lines.append(
            f"  NYU generate_heatmaps, whole process:            "
            f"{_num(ref_heatmaps['gflops_effective'], 0)} GFLOP/s"
        )
    for name, row in network["throughput"].items():
        backend = row.get("backend", "torch")  # torch's rows keep their older, bare names
        shown = name if name.startswith(f"{backend} ") else f"{backend} {name}"
        lines.append(
            f"  network only, {shown:<36}{_num(row['patches_per_s'], 2):>7} patches/s "
            f"{_num(row['gflops'], 0):>5} GFLOP/s = {_num(100 * row['of_peak'], 0)}% of "
            f"{row['peak']} peak"
        )
    if "backend_versions" in network:
        versions = ", ".join(f"{name} {v}" for name, v in network["backend_versions"].items())
        lines.append(
            f"  network only: {network['patches']} tissue patches in batches of "
            + ", ".join(f"{size} on {name}" for name, size in network["batch"].items())
            + f" (OpenVINO compiled for that shape, as the stage does); {versions}"
        )
    return lines


def _busy_lines(busy: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"busy CPU: {busy['stage']} (fp32, CPU) on {busy['exam']}, {busy['threads']} threads, "
        f"each a fresh process, alone and beside {busy['busy_processes']} busy process",
        f"  {'backend':<10}{'quiet s':>9}{'busy s':>9}{'slow-down':>11}",
    ]
    for backend, row in busy["seconds"].items():
        lines.append(
            f"  {backend:<10}{_num(row['quiet']):>9}{_num(row['busy']):>9}"
            f"{busy['slowdown'][backend]:>10.2f}x"
        )
    speedup = busy["openvino_speedup"]
    lines.append(f"  openvino vs torch: {speedup['quiet']:.2f}x quiet, {speedup['busy']:.2f}x busy")
    return lines


def _fast_lines(result: dict[str, Any]) -> list[str]:
    fast, ref_stages = result["fast"], _reference_stages(result)
    lines = ["", f"fast mode (--precision {fast['requested']}): ran {fast['used']}"]
    if fast.get("note"):
        lines.append(f"  {fast['note']}")
    for name, row in fast.get("stages", {}).items():
        rate = f", {_num(row['patches_per_s'], 2)} patches/s" if "patches_per_s" in row else ""
        lines.append(
            f"  {name:<18}{_num(row['seconds']):>9} s {_num(row['peak_rss_mib'], 0):>7} MiB{rate}"
            f"; vs exact {_ratio(result['stages'][name]['seconds'], row['seconds'])}"
            f", vs NYU {_ratio(ref_stages.get(name, {}).get('seconds'), row['seconds'])}"
        )
    for key in ("deviation", "deviation_accuracy_exam"):
        deviation = fast.get(key)
        if deviation:
            lines.append(_deviation_line(deviation, "exact"))
    return lines


def _reference_lines(result: dict[str, Any]) -> list[str]:
    reference = result["reference"]
    lines = ["", f"NYU reference: {reference['checkout']} (same exam, weights and threads)"]
    classify = reference["stages"][CLASSIFY]
    lines.append(
        f"  its classify = image {_num(classify['image_seconds'])} s + imageheatmaps "
        f"{_num(classify['imageheatmaps_seconds'])} s (two runs)"
    )
    parity = reference["parity"]
    lines.append(
        f"  ours vs NYU: heatmaps max |diff| {parity['heatmap_max_abs']:.2e}; predictions max "
        f"|diff| {parity['prediction_max_abs']:.2e} (its CSV has 4 decimals)"
    )
    return lines


def _scaling_lines(scaling: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"bcd run, {scaling['pipelines']}, {scaling['epochs']} epochs:",
        f"{'exams':>8}{'workers':>9}{'seconds':>10}{'s/exam':>9}{'peak MiB':>10}",
    ]
    for run in scaling["runs"]:
        lines.append(
            f"{run['exams']:>8}{run['workers']:>9}{_num(run['seconds']):>10}"
            f"{_num(run['seconds_per_exam']):>9}{_num(run['peak_rss_mib'], 0):>10}"
        )
    return lines
