# Shared by scripts/test and scripts/bench: create the virtualenv and install the package with
# its test and lint tools, only when pyproject.toml or the Django version asked for has changed.
# Reads PYTHON, VENV and DJANGO_SPEC (with defaults); must be sourced from the repository root.

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
DJANGO_SPEC=${DJANGO_SPEC:-django>=5.2,<6.0}

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.dagw-installed" want
  want="$(cat pyproject.toml) $DJANGO_SPEC"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing the package and its test tools into $VENV ..."
    local log="$VENV/install.log"
    if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
           "$VENV/bin/python" -m pip install --disable-pip-version-check \
             -e ".[test,lint,docs]" "$DJANGO_SPEC"; } >"$log" 2>&1; then
      cat "$log" >&2
      echo "Installation failed (log above)." >&2
      return 1
    fi
    printf '%s' "$want" > "$stamp"
  fi
}
