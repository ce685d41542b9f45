#!/usr/bin/env bash
# Regenerate the golden JSON with the real ansible-inventory (Debian's ansible-core):
#   internal/inventory/testdata/golden/regen.sh
# NAME.json = --list, NAME.graph = --graph, NAME.host-HOST.json = --host HOST (first host).
set -euo pipefail
cd "$(dirname "$0")"
export ANSIBLE_INVENTORY_ENABLED=ini ANSIBLE_INVENTORY_UNPARSED_FAILED=true ANSIBLE_NOCOLOR=1 \
       ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=true
for ini in *.ini; do
  name=${ini%.ini}
  ansible-inventory -i "$ini" --list > "$name.json" 2>/dev/null
  ansible-inventory -i "$ini" --graph > "$name.graph" 2>/dev/null
done
ansible --version | sed -n 1p > ORACLE
