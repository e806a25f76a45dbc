r"""The documentation: README.md is a short front page, and every relative
link and image in README.md and docs/*.md points at a file that exists (and,
for ``page.md#anchor``, at a heading of that page, slugged the way GitHub
does it). Reads Markdown only: imports nothing from align_gnn."""
import re
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / 'README.md'
DOCS = REPO / 'docs'
PAGES = [README] + sorted(DOCS.glob('*.md'))
MAX_README_LINES = 200

FENCE = re.compile(r'^ {0,3}(```|~~~)')
CODE_SPAN = re.compile(r'(`+)(.+?)\1', re.S)
LINK = re.compile(r'(!?)\[([^\]]*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)')
HTML_SRC = re.compile(r'<(?:img|a)\b[^>]*?\b(?:src|href)="([^"]*)"', re.I)
HEADING = re.compile(r'^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$')
SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*:|^//')


def prose_lines(text: str) -> list:
    r"""The lines of a Markdown text outside fenced code blocks (those in a
    fence become empty, so line numbers stay right)."""
    out, fence = [], None
    for line in text.split('\n'):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append('')
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append('')
        else:
            out.append(line)
    return out


def slug(heading: str) -> str:
    r"""GitHub's anchor for a heading: the rendered text (links and code
    spans reduced to their text), lower case, everything but letters, marks,
    digits, connector punctuation (``_``), spaces and hyphens dropped, each
    space a hyphen."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)
    text = re.sub(r'<[^>]+>', '', text).lower()
    kept = ''.join(c for c in text if c in ' -' or unicodedata.category(c)[0] in 'LMN'
                   or unicodedata.category(c) == 'Pc')
    return kept.replace(' ', '-')


def anchors(page: Path) -> set:
    r"""Every anchor GitHub makes for the ATX headings of `page` (a repeated
    slug gets ``-1``, ``-2``, …)."""
    seen, out = {}, set()
    for line in prose_lines(page.read_text(encoding='utf-8')):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f'{base}-{n}')
    return out


def links(page: Path) -> list:
    r"""(line number, is image, target) of every link and image in `page`
    outside code (fenced blocks and code spans)."""
    text = '\n'.join(prose_lines(page.read_text(encoding='utf-8')))
    # A code span becomes 'x' plus its newlines, so a link's text may hold code.
    text = CODE_SPAN.sub(lambda m: 'x' + '\n' * m.group(0).count('\n'), text)
    out = []
    for number, line in enumerate(text.split('\n'), 1):
        out += [(number, bang == '!', target) for bang, _, target in LINK.findall(line)]
        out += [(number, True, target) for target in HTML_SRC.findall(line)]
    return out


def broken(page: Path) -> list:
    r"""One message per relative link or image of `page` whose file (or, for
    a Markdown page, heading anchor) does not exist."""
    problems = []
    for number, image, target in links(page):
        where = f'{page.relative_to(REPO)}:{number}: {"image" if image else "link"} {target!r}'
        if not target or SCHEME.match(target):
            if not target:
                problems.append(f'{where}: empty target')
            continue
        path, _, anchor = target.partition('#')
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_relative_to(REPO):
            problems.append(f'{where}: points outside the repository')
        elif not dest.exists():
            problems.append(f'{where}: no such file {dest.relative_to(REPO)}')
        elif image and not dest.is_file():
            problems.append(f'{where}: not a file')
        elif anchor and dest.suffix == '.md' and anchor not in anchors(dest):
            problems.append(f'{where}: no heading #{anchor} in {dest.relative_to(REPO)}')
    return problems


@pytest.mark.parametrize('heading, expected', [
    ('Training on Planetoid: `train_gat.py`', 'training-on-planetoid-train_gatpy'),
    ('What happens when…', 'what-happens-when'),
    ('Cora, plain GAT against CT-aligned GAT: the figures',
     'cora-plain-gat-against-ct-aligned-gat-the-figures'),
    ('Your own graph: GraphML, GML, edge lists', 'your-own-graph-graphml-gml-edge-lists'),
    ('C++ & Rust', 'c--rust'),
    ('λ and ρ', 'λ-and-ρ'),
    ('See [the API](docs/api.md)', 'see-the-api'),
])
def test_slug(heading, expected):
    assert slug(heading) == expected


def test_anchors_numbers_repeated_headings(tmp_path):
    page = tmp_path / 'p.md'
    page.write_text('# A\n\n## Notes\n\n```\n## Notes\n```\n\n## Notes\n', encoding='utf-8')
    assert anchors(page) == {'a', 'notes', 'notes-1'}


def test_broken_finds_bad_links(tmp_path, monkeypatch):
    repo = tmp_path / 'repo'
    monkeypatch.setitem(globals(), 'REPO', repo)
    (repo / 'docs').mkdir(parents=True)
    (repo / 'docs' / 'a.png').write_bytes(b'')
    (repo / 'docs' / 'b.md').write_text('# B\n\n## Two words\n', encoding='utf-8')
    (tmp_path / 'x.md').write_text('', encoding='utf-8')
    page = repo / 'README.md'
    page.write_text(
        '# T\n\n'
        '[ok](docs/b.md#two-words) ![ok](docs/a.png) [ok](#t) [web](https://example.org/x)\n'
        '`[in code](nowhere.md)`\n\n'
        '```\n[in a fence](nowhere.md)\n```\n\n'
        '[gone](docs/c.md) ![gone](a.png) [bad anchor](docs/b.md#three) [here](#none)\n'
        '[out](../x.md)\n', encoding='utf-8')
    found = broken(page)
    assert [message.split(': ', 2)[1] for message in found] == [
        "link 'docs/c.md'", "image 'a.png'", "link 'docs/b.md#three'", "link '#none'",
        "link '../x.md'"], found
    assert all(message.startswith('README.md:10: ') for message in found[:4]), found
    assert found[4].startswith('README.md:11: '), found


@pytest.mark.parametrize('page', PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_links_resolve(page):
    problems = broken(page)
    assert not problems, '\n'.join(problems)


def test_readme_is_short():
    lines = README.read_text(encoding='utf-8').count('\n')
    assert lines <= MAX_README_LINES, (
        f'README.md has {lines} lines (at most {MAX_README_LINES}): move long sections to docs/')


def test_readme_holds_the_ci_command():
    r"""CI runs the README's test command: .ci/run's command line is in the
    README, character for character."""
    command = [line for line in (REPO / '.ci' / 'run').read_text(encoding='utf-8').split('\n')
               if 'python -m pytest' in line]
    assert len(command) == 1
    assert command[0] in README.read_text(encoding='utf-8').split('\n')


def test_every_page_is_linked_from_readme():
    linked = {(README.parent / target.partition('#')[0]).resolve()
              for _, _, target in links(README) if not SCHEME.match(target)}
    missing = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert not missing, f'docs pages not linked from README.md: {missing}'


@pytest.mark.parametrize('page', PAGES[1:], ids=lambda page: page.name)
def test_page_has_title_and_way_back(page):
    lines = page.read_text(encoding='utf-8').split('\n')
    assert lines[0].startswith('# '), f'{page.name} does not start with a title'
    assert '../README.md' in {target for _, _, target in links(page)}, (
        f'{page.name} does not link back to README.md')


def test_every_figure_is_shown():
    shown = {(page.parent / target).resolve() for page in PAGES
             for _, image, target in links(page) if image and not SCHEME.match(target)}
    hidden = [png.name for png in sorted(DOCS.glob('*.png')) if png.resolve() not in shown]
    assert not hidden, f'figures in docs/ that no page shows: {hidden}'


def test_layout_names_every_module():
    # The front page's Layout section lists every module of the package
    # and every data source, so that it matches the tree.
    layout = README.read_text().split('## Layout', 1)[1]
    package = REPO / 'align_gnn'
    modules = [p.stem for p in package.glob('*.py') if p.stem != '__init__']
    sources = [p.stem for p in (package / 'data').glob('*.py')
               if p.stem not in ('__init__', 'utils')]
    missing = [name for name in modules + sources
               if not re.search(rf'\b{name}\b', layout)]
    assert not missing, f'README Layout does not name: {missing}'
