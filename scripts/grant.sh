#!/usr/bin/env bash
# Grants the gateway's managed identity the right to resume Lifecycle Workflows tasks.
set -euo pipefail

GRAPH_APP_ID=00000003-0000-0000-c000-000000000000   # Microsoft Graph, same id in every tenant
ROLE=LifecycleWorkflows.ReadWrite.All
READ_ROLE=LifecycleWorkflows.Read.All

usage() {
  cat <<USAGE
Usage:
  scripts/grant.sh --extension <customTaskExtensionId> (IDENTITY) [--dry-run]
  scripts/grant.sh --app-role (IDENTITY) [--dry-run]
  scripts/grant.sh --read [--extension <id> | --app-role] (IDENTITY) [--dry-run]

Gives the gateway's managed identity what Graph wants before it accepts a resume:

  --extension <id>  Least privilege (recommended): add the identity's application (client) id
                    to that custom task extension's callbackConfiguration.authorizedApps.
                    Existing authorized apps and the timeoutDuration are kept. Run once per
                    extension whose Logic App calls the gateway. The update is made by
                    \`handler grant\` (HANDLER, else target/release/handler, else handler on
                    PATH), signed in by device code: the Azure CLI's token has no
                    LifecycleWorkflows scope. Needs the Lifecycle Workflows Administrator role
                    and Logic App Contributor, Contributor or Owner on the extension's Logic App.
  --app-role        Tenant-wide: assign the Microsoft Graph application permission
                    $ROLE to the identity. Needs a Privileged Role
                    Administrator (or Global Administrator).
  --read            Also (or only) assign $READ_ROLE, which the gateway needs
                    with CALLER_SCOPE=extension (the default under CALLER_AUTH=entra) to read
                    each task and its extension before a resume. Same administrator as --app-role.

IDENTITY, one of:
  --resource-group <rg> --name <function-app>   the Function App's system-assigned identity
  --principal-id <objectId>                     any managed identity's service principal object id
                                                (a user-assigned identity: its principalId)

Options:
  --graph <url>     Microsoft Graph base URL (default https://graph.microsoft.com;
                    https://graph.microsoft.us, https://dod-graph.microsoft.us,
                    https://microsoftgraph.chinacloudapi.cn for national clouds)
  --dry-run         Read what is there, then print the change instead of making it
  -h, --help        This text

Idempotent: it reads first and changes nothing when the grant is already in place.
Requires the Azure CLI, signed in (az login) to the tenant of the identity, to find the
identity's application id (and, for --app-role, to assign the role).
USAGE
}

die() { printf 'grant: %s\n' "$*" >&2; exit 2; }
say() { printf 'grant: %s\n' "$*"; }
is_guid() { [[ "$1" =~ ^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$ ]]; }

mode="" extension="" principal="" group="" app="" dry_run=false read=false graph="https://graph.microsoft.com"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --extension) [[ $# -ge 2 ]] || die "--extension needs a customTaskExtensionId"; mode=extension; extension="$2"; shift 2 ;;
    --app-role) mode="app-role"; shift ;;
    --read) read=true; shift ;;
    --principal-id) [[ $# -ge 2 ]] || die "--principal-id needs a value"; principal="$2"; shift 2 ;;
    --resource-group | -g) [[ $# -ge 2 ]] || die "$1 needs a value"; group="$2"; shift 2 ;;
    --name | -n) [[ $# -ge 2 ]] || die "$1 needs a value"; app="$2"; shift 2 ;;
    --graph) [[ $# -ge 2 ]] || die "--graph needs a URL"; graph="${2%/}"; shift 2 ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ -n "$mode" ]] || $read || { usage >&2; die "choose --extension <customTaskExtensionId>, --app-role or --read"; }
[[ "$graph" =~ ^https://[A-Za-z0-9.-]+$ ]] || die "--graph must be an https base URL without a path, not $graph"
if [[ "$mode" == extension ]]; then
  is_guid "$extension" || die "--extension wants the custom task extension's id (a GUID), not '$extension'"
fi
command -v az >/dev/null || die "the Azure CLI (az) is not on PATH"

# Writes go through here: printed in --dry-run, run otherwise.
write() {
  if $dry_run; then
    printf 'DRY-RUN would run:'
    printf ' %q' az "$@"
    printf '\n'
  else
    az "$@" >/dev/null
  fi
}

# 1. The identity's service principal object id and application (client) id.
if [[ -z "$principal" ]]; then
  [[ -n "$group" && -n "$app" ]] || die "name the identity: --resource-group <rg> --name <function-app>, or --principal-id <objectId>"
  principal="$(az functionapp identity show --resource-group "$group" --name "$app" --query principalId --output tsv)"
  [[ -n "$principal" ]] || die "$app in $group has no system-assigned identity (deploy infra/main.bicep first)"
fi
is_guid "$principal" || die "principal id '$principal' is not a GUID"
app_id="$(az ad sp show --id "$principal" --query appId --output tsv)"
is_guid "$app_id" || die "no service principal with object id $principal"
say "identity: service principal $principal, application id $app_id"

# 2a. Assigns one Microsoft Graph application permission to the identity, unless it holds it.
assign_role() {
  local role="$1" graph_sp role_id assignments existing body
  graph_sp="$(az ad sp show --id "$GRAPH_APP_ID" --query id --output tsv)"
  role_id="$(az ad sp show --id "$GRAPH_APP_ID" --query "appRoles[?value=='$role'].id | [0]" --output tsv)"
  if ! is_guid "$graph_sp" || ! is_guid "$role_id"; then
    die "cannot find $role on Microsoft Graph's service principal"
  fi
  assignments="$graph/v1.0/servicePrincipals/$principal/appRoleAssignments"
  existing="$(az rest --method GET --uri "$assignments" \
    --query "value[?appRoleId=='$role_id' && resourceId=='$graph_sp'].id | [0]" --output tsv)"
  if [[ -n "$existing" ]]; then
    say "already done: $app_id holds $role (assignment $existing); nothing changed"
    return 0
  fi
  body="{\"principalId\":\"$principal\",\"resourceId\":\"$graph_sp\",\"appRoleId\":\"$role_id\"}"
  write rest --method POST --uri "$assignments" --headers Content-Type=application/json --body "$body"
  $dry_run || say "assigned $role to $app_id; tokens issued from now on carry it (a running gateway refreshes its token within the hour)"
}

if $read; then
  assign_role "$READ_ROLE"
fi
if [[ "$mode" == app-role ]]; then
  assign_role "$ROLE"
fi
[[ "$mode" == extension ]] || exit 0

# 2b. The extension: handler grant reads it, adds the app id (one identifier per app, timeout
# kept) and changes nothing when it is listed already. az rest cannot: the Azure CLI's Graph token
# carries no LifecycleWorkflows scope, so Graph refuses it.
handler="${HANDLER:-}"
if [[ -z "$handler" ]]; then
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [[ -x "$here/target/release/handler" ]]; then
    handler="$here/target/release/handler"
  else
    handler="$(command -v handler || true)"
  fi
fi
[[ -n "$handler" && -x "$handler" ]] || die "handler not found: run cargo build --release (or set HANDLER), then: handler grant --extension $extension --app $app_id"
case "$graph" in
  https://graph.microsoft.com) cloud=global ;;
  https://graph.microsoft.us) cloud=usgov ;;
  https://dod-graph.microsoft.us) cloud=usgovdod ;;
  https://microsoftgraph.chinacloudapi.cn) cloud=china ;;
  *) die "--graph $graph is not a national cloud's Graph" ;;
esac
args=(grant --extension "$extension" --app "$app_id")
$dry_run && args+=(--dry-run)
GRAPH_CLOUD="$cloud" RESUME_CREDENTIAL="${RESUME_CREDENTIAL:-device-code}" "$handler" "${args[@]}"
