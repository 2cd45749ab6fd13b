#!/usr/bin/env python3
"""Adds up JUnit XML files (GoogleTest, pytest) and prints one line: 'N passed, M failed'.

Exit status 0 only when at least one test ran, none failed and every expected file was there.
"""
import sys
import xml.etree.ElementTree as ET


def count(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    passed = failed = skipped = 0
    for suite in suites:
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif case.find("skipped") is not None or case.get("result") == "skipped" \
                    or case.get("status") == "notrun":
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped


def main(paths):
    total = [0, 0, 0]
    missing = []
    for p in paths:
        try:
            c = count(p)
        except (OSError, ET.ParseError) as e:
            missing.append(f"{p}: {e}")
            continue
        print(f"  {p}: {c[0]} passed, {c[1]} failed, {c[2]} skipped")
        for i in range(3):
            total[i] += c[i]
    for m in missing:
        print(f"  missing results (suite crashed?): {m}")
    failed = total[1] + len(missing)
    line = f"{total[0]} passed, {failed} failed"
    if total[2]:
        line += f", {total[2]} skipped"
    print(line)
    return 0 if failed == 0 and total[0] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
