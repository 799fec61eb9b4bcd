# Shared by scripts/test and scripts/bench: create the virtualenv and install the package with
# its test and lint tools, only when pyproject.toml or the Django version asked for has changed.
# Reads PYTHON, VENV, DJANGO_SPEC and EXTRAS (with defaults); must be sourced from the repository
# root. EXTRAS gets "mysql" added when DAGW_TEST_DATABASE=mysql (mysqlclient, built against
# libmariadb-dev).

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
DJANGO_SPEC=${DJANGO_SPEC:-django>=5.2,<6.0}
if [ -z "${EXTRAS:-}" ]; then
  EXTRAS=test,lint,docs,browser
  # mysqlclient builds only against the MySQL/MariaDB client headers: add it where they exist,
  # so one venv serves every leg on this machine (the stamp below would flip otherwise).
  if pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null; then
    EXTRAS="$EXTRAS,mysql"
  fi
fi
if [ "${DAGW_TEST_DATABASE:-}" = mysql ] && [[ ",$EXTRAS," != *,mysql,* ]]; then
  EXTRAS="$EXTRAS,mysql"
fi

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.dagw-installed" want
  want="$(cat pyproject.toml) $DJANGO_SPEC [$EXTRAS]"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "Installing the package and its test tools into $VENV ..."
    local log="$VENV/install.log"
    if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
           "$VENV/bin/python" -m pip install --disable-pip-version-check \
             -e ".[$EXTRAS]" "$DJANGO_SPEC"; } >"$log" 2>&1; then
      cat "$log" >&2
      echo "Installation failed (log above)." >&2
      return 1
    fi
    printf '%s' "$want" > "$stamp"
  fi
}
