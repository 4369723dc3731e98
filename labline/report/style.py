"""The report's stylesheet, inline in every page (no file to lose, nothing to fetch)."""

# No script, no remote anything: a page is readable offline and runs nothing it embeds.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
:root { --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --bg: #f8fafc; --card: #fff; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       background: var(--bg); }
header { background: var(--ink); color: #e2e8f0; padding: 10px 28px; font-size: 13px; }
header .brand { font-weight: 700; color: #fff; letter-spacing: .04em; margin-right: 6px; }
nav { position: sticky; top: 0; z-index: 2; background: #fffffff0; border-bottom: 1px solid var(--line);
      padding: 8px 28px; display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 13px; }
nav a { color: var(--muted); text-decoration: none; } nav a:hover { color: var(--accent); }
main { padding: 8px 28px 40px; max-width: 1500px; }
h1 { font-size: 22px; margin: 18px 0 2px; } h1 code { font-size: 20px; }
h2 { font-size: 17px; margin: 0 0 10px; } h3 { font-size: 14px; margin: 16px 0 6px; color: #334155; }
h4 { margin: 10px 0 4px; font-size: 13px; color: var(--muted); }
.sub, .note { color: var(--muted); margin: 0 0 10px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px;
          margin: 14px 0; }
code { font: 12px/1.4 ui-monospace, "SFMono-Regular", Menlo, monospace; }
table { border-collapse: collapse; margin: 4px 0 8px; font-size: 13px; }
th { text-align: left; font-weight: 600; color: #475569; border-bottom: 2px solid var(--line); padding: 5px 10px; }
td { border-bottom: 1px solid var(--line); padding: 4px 10px; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; color: #15803d; }
td.diff { background: #fef3c7; font-weight: 600; } td.noisy { color: #94a3b8; }
table.kv td:first-child { color: #475569; white-space: nowrap; }
table.kv td code { word-break: break-all; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 999px; font-size: 12px; font-weight: 600;
         background: #fee2e2; color: #b91c1c; vertical-align: middle; }
.s-succeeded, .s-healthy, .s-audit-passed, .s-ok { background: #dcfce7; color: #15803d; }
.s-cached { background: #e0f2fe; color: #0369a1; } .s-skipped { background: #f1f5f9; color: #64748b; }
.s-running { background: #fef9c3; color: #a16207; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 12px 0 4px; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 8px 14px;
        min-width: 140px; }
.tile .k { color: var(--muted); font-size: 12px; } .tile .v { font-size: 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 4px 12px; overflow-x: auto; }
.card h3 { margin-top: 8px; }
.plots { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
svg.chart { background: #fff; max-width: 100%; height: auto; }
.scroll { overflow-x: auto; } svg.dag { margin: 4px 0 10px; } svg.dag a:hover rect { stroke-width: 3; }
.failure { border-left: 4px solid #dc2626; padding: 2px 14px; margin: 8px 0; background: #fff7f7; }
.error { font-size: 15px; color: #991b1b; }
pre { background: #0f172a; color: #e2e8f0; padding: 10px 12px; border-radius: 6px; overflow-x: auto;
      font: 12px/1.45 ui-monospace, Menlo, monospace; }
pre.code { background: #f1f5f9; color: var(--ink); }
details { border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; background: #fff; }
details > summary { cursor: pointer; padding: 8px 12px; }
details[open] > summary { border-bottom: 1px solid var(--line); }
.markdown { padding: 2px 16px 8px; } .markdown h1 { font-size: 18px; }
.markdown h2 { font-size: 15px; margin-top: 14px; }
.side { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 0 22px; }
.side > article { min-width: 0; } .side section { overflow-x: auto; }
.nbv { padding: 6px 14px; overflow-x: auto; } .nbv .jp-Cell { margin: 8px 0; }
.nbv .jp-InputArea-editor { background: #f8fafc; border: 1px solid var(--line); border-radius: 6px;
                           padding: 0 10px; overflow-x: auto; }
.nbv .highlight pre { background: transparent; color: inherit; padding: 6px 0; margin: 0; }
.nbv .jp-OutputArea-output pre { background: #fff; color: var(--ink); padding: 4px 0; }
.nbv .jp-OutputPrompt, .nbv .jp-InputPrompt { display: none; }
.nbv img { max-width: 100%; } .nbv .jp-RenderedHTMLCommon table { font-size: 12px; }
.nbv .jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"] pre { background: #fff7ed; }
.nbv a.anchor-link { display: none; }
.pipeline { display: flex; flex-wrap: wrap; gap: 8px 28px; align-items: center; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 30px; }
"""
