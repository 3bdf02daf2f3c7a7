"""Jinja2 templates of the exam report and the summary index (kept in Python so that
they ship inside the package without package-data settings)."""

from __future__ import annotations

STYLE = """
:root { color-scheme: dark; }
body { margin: 0; background: #17191d; color: #e6e6e6;
       font: 15px/1.45 "Segoe UI", Roboto, Arial, "Liberation Sans", "DejaVu Sans", sans-serif; }
main { max-width: 1800px; margin: 0 auto; padding: 12px 20px 28px; }
.banner { background: #cc0000; color: #ffffff; font-weight: 700; font-size: 22px;
          text-align: center; padding: 14px 20px; letter-spacing: 0.02em;
          border-bottom: 4px solid #7a0000; }
.banner small { display: block; font-size: 14px; font-weight: 500; }
h1 { font-size: 26px; margin: 8px 0 2px; }
h2 { font-size: 17px; margin: 0 0 8px; color: #ffffff; }
.sub, .note { color: #a9adb5; font-size: 13px; margin: 2px 0 8px; }
.cards { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 16px; margin: 12px 0 16px; }
.card { background: #22252b; border: 1px solid #343841; border-radius: 6px; padding: 12px 16px; }
table { border-collapse: collapse; font-size: 14px; }
th, td { padding: 4px 12px; border-bottom: 1px solid #3a3e47; text-align: left; }
th { color: #c7cbd3; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums;
         font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
td.missing { color: #8a8f99; font-style: italic; text-align: right; }
tr.malignant td:first-child { color: #ff8080; }
tr.benign td:first-child { color: #86e386; }
.kv td:first-child { color: #a9adb5; }
.kv td { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px;
         word-break: break-all; }
.bad { color: #ff6b6b; font-weight: 700; }
.good { color: #7ee07e; font-weight: 700; }
.hanging { display: grid; grid-template-columns: 1fr 1fr; gap: 10px 14px; }
.side { text-align: center; font-weight: 700; color: #c7cbd3; letter-spacing: 0.1em; }
figure { margin: 0; background: #000; border: 1px solid #343841; }
figcaption { padding: 4px 8px; font-weight: 600; background: #22252b; }
figcaption span { color: #a9adb5; font-weight: 400; margin-left: 8px; }
figure img { display: block; width: 100%; height: auto; }
a { color: #8cb8ff; }
.missing { color: #8a8f99; font-style: italic; }
.failures { margin-top: 16px; }
.legend { display: flex; gap: 28px; align-items: center; margin: 4px 0 10px; font-size: 14px; }
.legend .bar { display: inline-block; width: 180px; height: 12px; vertical-align: middle;
               margin: 0 6px; border: 1px solid #555; }
"""

EXAM_REPORT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Exam {{ exam_id }} — screening report</title>
<style>{{ style | safe }}</style>
</head>
<body>
{% if not verified %}
<div class="banner" role="alert">{{ warning }}
<small>These weights were not checked against the published checkpoints.</small></div>
{% endif %}
<main>
<h1>Exam {{ exam_id }}</h1>
<p class="sub">Breast cancer screening models of Wu et al., IEEE TMI 2019 (NYU):
per-breast probabilities and patch-level heatmaps. Research use only.</p>
<div class="cards">
<section class="card">
<h2>Predictions</h2>
<table>
<tr><th>label</th>{% for model in models %}<th>{{ model.title }}</th>{% endfor %}</tr>
{% for label in labels %}
<tr class="{{ label.kind }}"><td>{{ label.title }}</td>
{% for model in models %}
{% if model.probabilities %}
<td class="num">{{ "%.4f" % model.probabilities[label.name] }}</td>
{% else %}
<td class="missing">not run</td>
{% endif %}
{% endfor %}
</tr>
{% endfor %}
</table>
<p class="note">Probability that the breast has a benign / malignant finding.</p>
</section>
<section class="card">
<h2>Provenance</h2>
<table class="kv">
<tr><td>verified weights</td><td>
{% if verified %}<span class="good">yes</span>{% else %}<span class="bad">NO</span>{% endif %}
</td></tr>
{% for key, value in provenance %}
<tr><td>{{ key }}</td><td>{{ value }}</td></tr>
{% endfor %}
</table>
</section>
</div>
<h2>Views</h2>
<p class="note">Radiological hanging: the patient's right breast on the viewer's left, left
breast on the right, chest walls meeting in the middle; CC row above MLO row. Each view:
windowed image | malignant heatmap (red) | benign heatmap (green); tint opacity is
proportional to the probability ({{ "%.1f" % full_alpha }} at p = 1).
Click an image to open the full-resolution overlay.</p>
<div class="legend">
{% for bar in legend %}
<span><b style="color: {{ bar.text_colour }}">{{ bar.label }}</b> p = 0
<span class="bar" style="background: {{ bar.gradient }}"></span>1</span>
{% endfor %}
</div>
<div class="hanging">
<div class="side">RIGHT</div><div class="side">LEFT</div>
{% for cell in cells %}
<div>
{% for image in cell %}
<figure>
<figcaption>{{ image.view }}<span>{{ image.image_name }}</span></figcaption>
<a href="{{ image.full_resolution_file }}"><img src="{{ image.data_uri }}"
 alt="{{ image.view }} {{ image.image_name }}: image, malignant and benign overlays"></a>
</figure>
{% endfor %}
</div>
{% endfor %}
</div>
</main>
</body>
</html>
"""

SUMMARY_INDEX = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Screening summary — {{ exam_count }} exams</title>
<style>{{ style | safe }}</style>
</head>
<body>
{% if unverified_exams %}
<div class="banner" role="alert">{{ warning }}
<small>Unverified weights in {{ unverified_exams | length }} of {{ predicted_count }}
exams with predictions: {{ unverified_exams | join(", ") }}</small></div>
{% endif %}
<main>
<h1>Screening summary</h1>
<p class="sub">{{ exam_count }} exam{{ "" if exam_count == 1 else "s" }}:
{{ predicted_count }} with predictions,
{{ failed_count }} with errors. Breast cancer screening models of Wu et al.,
IEEE TMI 2019 (NYU). Research use only.</p>
<p class="note">Report links are relative (<code>../visualize/&lt;exam&gt;/report.html</code>):
they work when the summary and visualize outputs sit side by side, as <code>bcd run</code>
lays them out (<code>&lt;out&gt;/summary/index.html</code> and
<code>&lt;out&gt;/visualize/&lt;exam&gt;/report.html</code>). From Pachyderm, download both
output repos into one folder (<code>summary/</code> beside <code>visualize/</code>).</p>
<section class="card">
<h2>Predictions</h2>
{% if rows %}
<table>
<tr><th>exam</th><th>report</th><th>model</th>
{% for label in labels %}<th>{{ label.title }}</th>{% endfor %}
<th>weights</th></tr>
{% for row in rows %}
<tr><td>{{ row.exam_id }}</td>
<td>
{% if row.report_link %}
<a href="{{ row.report_link }}">report</a>
{% else %}
<span class="missing">no report</span>
{% endif %}
</td>
<td>{{ row.model_title }}</td>
{% for label in labels %}
<td class="num">{{ "%.4f" % row.probabilities[label.name] }}</td>
{% endfor %}
<td>
{% if row.verified %}
<span class="good">verified</span>
{% else %}
<span class="bad">UNVERIFIED</span>
{% endif %}
</td></tr>
{% endfor %}
</table>
<p class="note">Rounded to 4 decimals here; full precision in predictions.csv.</p>
{% else %}
<p>No exam has predictions.</p>
{% endif %}
</section>
<section class="card failures">
<h2>Failed exams</h2>
{% if failures %}
<table>
<tr><th>exam</th><th>stage</th><th>file</th><th>reason</th></tr>
{% for failure in failures %}
<tr><td>{{ failure.exam }}</td><td>{{ failure.stage }}</td><td>{{ failure.file or "" }}</td>
<td>{{ failure.reason }}</td></tr>
{% endfor %}
</table>
{% else %}
<p>None.</p>
{% endif %}
</section>
</main>
</body>
</html>
"""
