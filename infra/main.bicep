// Resume gateway on Azure Functions Flex Consumption (FC1, Linux, custom handler runtime 1.0).
//
// Creates: a storage account used only through the app's managed identity (no shared keys),
// with a blob container for deployment packages; a Log Analytics workspace and an Application
// Insights component that accepts only Entra-authenticated telemetry; the Flex Consumption plan;
// the Function App with a system-assigned identity (plus an optional user-assigned one for Graph);
// and the role assignments those need. Every gateway setting is a parameter with the gateway's
// own default (see docs/settings.md; a test checks this file against src/config.rs).
//
//   az deployment group create -g <rg> -f infra/main.bicep -p @infra/main.parameters.example.json

targetScope = 'resourceGroup'

@description('Azure region; must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Function App name (globally unique, becomes <name>.azurewebsites.net).')
@minLength(2)
@maxLength(60)
param appName string

@description('Storage account name (3-24 lower-case letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param storageAccountName string = 'st${uniqueString(resourceGroup().id, appName)}'

// Flex Consumption accepts 40 to 1,000 (Microsoft Learn, "Migrate AWS Lambda workloads to Azure
// Functions", scaling: "The lowest maximum instance count value is 40, and the highest supported
// maximum instance count value is 1,000"; Azure-Samples/azure-functions-flex-consumption-samples,
// IaC/bicep/main.bicep, declares the same bounds).
@description('Largest number of instances the app may scale out to (Flex Consumption: 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each instance in MB; billing is per GB-second of this size while executing.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Create a user-assigned identity and let the gateway call Graph with it (AZURE_CLIENT_ID). Otherwise the system-assigned identity calls Graph.')
param useUserAssignedIdentity bool = false

@description('Days Log Analytics keeps the gateway logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

param tags object = {}

// ---- Gateway settings (defaults are the gateway's own; empty means unset) ----

@description('GRAPH_CLOUD: global, usgov, usgovdod or china.')
@allowed([
  'global'
  'usgov'
  'usgovdod'
  'china'
])
param graphCloud string = 'global'

@description('GRAPH_ENDPOINT: override of the Graph base URL (https); empty = the cloud\'s Graph.')
param graphEndpoint string = ''

@description('GRAPH_API_VERSION: v1.0 or beta.')
@allowed([
  'v1.0'
  'beta'
])
param graphApiVersion string = 'v1.0'

@description('AZURE_CLIENT_ID: client id of a user-assigned identity to call Graph with; empty = system-assigned. Ignored when useUserAssignedIdentity is true (the created identity is used).')
param azureClientId string = ''

@description('RESUME_CREDENTIAL: auto, managed-identity, developer or client-secret.')
@allowed([
  'auto'
  'managed-identity'
  'developer'
  'client-secret'
])
param resumeCredential string = 'auto'

@description('AZURE_TENANT_ID: only for RESUME_CREDENTIAL=client-secret.')
param azureTenantId string = ''

@description('AZURE_CLIENT_SECRET: only for RESUME_CREDENTIAL=client-secret. Prefer the managed identity.')
@secure()
param azureClientSecret string = ''

@description('RESUME_DRY_RUN: true validates and answers without calling Graph.')
param resumeDryRun bool = false

@description('RESUME_DEADLINE_SECONDS: time budget of one request, 1 to 229.')
@minValue(1)
@maxValue(229)
param resumeDeadlineSeconds int = 60

@description('RESUME_SOURCE: the source sent to Graph when the caller names none.')
@maxLength(256)
param resumeSource string = 'resume-gateway'

@description('RUST_LOG: log filter; empty = info (Azure SDK at warn).')
param rustLog string = ''

@description('LOG_FORMAT: json (what the host and Application Insights expect) or text; empty = json, since the host reads a pipe.')
@allowed([
  ''
  'json'
  'text'
])
param logFormat string = ''

@description('CALLER_AUTH: function-key (the host checks the function key only) or entra (callers also present an Entra ID app token).')
@allowed([
  'function-key'
  'entra'
])
param callerAuth string = 'function-key'

@description('CALLER_TENANT_ID: tenant whose tokens callers present; required with entra.')
param callerTenantId string = ''

@description('CALLER_AUDIENCES: comma list of accepted token audiences, e.g. api://<app-id>,<app-id>; required with entra.')
param callerAudiences string = ''

@description('CALLER_ALLOWED_APP_IDS: comma list of caller application (client) ids allowed to resume; required with entra.')
param callerAllowedAppIds string = ''

@description('CALLER_ALLOWED_OBJECT_IDS: optional comma list of caller object ids; when set, the caller must be on it too.')
param callerAllowedObjectIds string = ''

@description('CALLER_AUTHORITY: Entra sign-in host for token validation; empty follows GRAPH_CLOUD.')
param callerAuthority string = ''

@description('CALLER_SCOPE: with entra only; extension (empty = the default, a caller resumes only tasks whose custom task extension lists it in authorizedApps; the identity needs LifecycleWorkflows.Read.All) or tenant (any task the identity may resume).')
@allowed([
  ''
  'extension'
  'tenant'
])
param callerScope string = ''

// ---- Built-in role definition ids ----
// The four roles the official Flex Consumption sample grants the app's identity for host storage
// and telemetry (Azure-Samples/azure-functions-flex-consumption-samples, IaC/bicep/rbac.bicep):
// blobs (deployment package, host leases), queues and tables (host state), and Entra-authenticated
// Application Insights ingestion. Nothing else: the gateway itself reads no storage.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

var deploymentContainerName = 'app-package-${take(toLower(appName), 40)}'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity only: no keys, no connection strings
    defaultToOAuthAuthentication: true
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${appName}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${appName}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true // telemetry only with an Entra token (Monitoring Metrics Publisher)
  }
}

resource graphIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (useUserAssignedIdentity) {
  name: 'id-${appName}'
  location: location
  tags: tags
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${appName}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux
  }
}

// The gateway reads these; FUNCTIONS_CUSTOMHANDLER_PORT and FUNCTIONS_APP_ROOT_PATH are set by the host.
var gatewaySettings = {
  GRAPH_CLOUD: graphCloud
  GRAPH_ENDPOINT: graphEndpoint
  GRAPH_API_VERSION: graphApiVersion
  AZURE_CLIENT_ID: useUserAssignedIdentity ? graphIdentity.properties.clientId : azureClientId
  RESUME_CREDENTIAL: resumeCredential
  AZURE_TENANT_ID: azureTenantId
  AZURE_CLIENT_SECRET: azureClientSecret
  RESUME_DRY_RUN: resumeDryRun ? 'true' : 'false'
  RESUME_DEADLINE_SECONDS: string(resumeDeadlineSeconds)
  RESUME_SOURCE: resumeSource
  RUST_LOG: rustLog
  LOG_FORMAT: logFormat
  CALLER_AUTH: callerAuth
  CALLER_TENANT_ID: callerTenantId
  CALLER_AUDIENCES: callerAudiences
  CALLER_ALLOWED_APP_IDS: callerAllowedAppIds
  CALLER_ALLOWED_OBJECT_IDS: callerAllowedObjectIds
  CALLER_AUTHORITY: callerAuthority
  CALLER_SCOPE: callerScope
}

// Host storage and telemetry through the system-assigned identity. Flex Consumption takes the
// runtime from functionAppConfig: FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION
// must not be set.
var platformSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__credential: 'managedidentity'
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
}

var systemIdentity = {
  type: 'SystemAssigned'
}

// The system-assigned identity still reaches storage and telemetry; the user-assigned one calls Graph.
var systemAndUserIdentity = {
  type: 'SystemAssigned, UserAssigned'
  userAssignedIdentities: {
    '${resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'id-${appName}')}': {}
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: useUserAssignedIdentity ? systemAndUserIdentity : systemIdentity
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
  }
  dependsOn: [
    deploymentContainer
    graphIdentity
  ]
}

resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(platformSettings, gatewaySettings)
  dependsOn: [
    blobOwner
    queueContributor
    tableContributor
    metricsPublisher
  ]
}

resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionApp.id, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

@description('Function App name.')
output functionAppName string = functionApp.name

@description('The function URL; callers send the function key in the x-functions-key header (samples/logic-app-action.json).')
output resumeUrl string = 'https://${functionApp.properties.defaultHostName}/api/function-resume'

@description('Object id of the identity that calls Graph: pass to scripts/grant.sh --principal-id.')
output gatewayPrincipalId string = useUserAssignedIdentity ? graphIdentity.properties.principalId : functionApp.identity.principalId

@description('Client (application) id of the identity that calls Graph. ARM does not expose it for a system-assigned identity: then empty, and scripts/grant.sh looks it up (az ad sp show --id <principalId> --query appId).')
output gatewayClientId string = useUserAssignedIdentity ? graphIdentity.properties.clientId : ''

@description('Object id of the system-assigned identity (storage, telemetry).')
output systemPrincipalId string = functionApp.identity.principalId

output tenantId string = functionApp.identity.tenantId
