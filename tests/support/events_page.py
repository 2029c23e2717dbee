"""What the Events page shows, read from its DOM as Chromium dumps it."""
import re
from typing import Dict, List


def table_rows(dom: str) -> Dict[str, List[str]]:
    """Key of each row of the events table -> the text of its cells."""
    rows = {}
    for key, body in re.findall(r'<tr data-key="([^"]+)">(.*?)</tr>', dom, re.DOTALL):
        rows[key] = [re.sub(r'<[^>]+>', '', cell).strip()
                     for cell in re.findall(r'<td[^>]*>(.*?)</td>', body, re.DOTALL)]
    return rows


def table_headings(dom: str) -> List[str]:
    return re.findall(r'<th data-field="[^"]+">([^<]*)</th>', dom)


def status_options(dom: str) -> List[str]:
    select = re.search(r'<select id="status"[^>]*>(.*?)</select>', dom, re.DOTALL).group(1)
    return re.findall(r'<option[^>]*>([^<]*)</option>', select)
