//! The lease table itself: created on first run (on-demand billing) and waited on until ACTIVE,
//! and the worker's permissions on it tried at start-up without changing it.

use super::item::attr;
use super::store::{LeaseError, LeaseStore, TABLE_ACTIVE_DEADLINE};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as A, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use std::collections::HashMap;

impl LeaseStore {
    /// Tries every call the worker makes on the lease table without changing it: a Scan of one
    /// item, and a PutItem, UpdateItem and DeleteItem on a key that does not exist, each with a
    /// condition that cannot hold. A conditional failure proves the permission.
    pub async fn probe_permissions(&self) -> Result<(), crate::aws::Denied> {
        let probe = format!("_permission-probe/{}", rand::random::<u64>());
        let key = || HashMap::from([(attr::LEASE_KEY.to_owned(), A::S(probe.clone()))]);
        let never = "attribute_exists(#k) AND attribute_not_exists(#k)";
        let outcome = |op: &'static str, denied: bool, e: String| {
            if denied {
                Err(crate::aws::Denied {
                    action: format!("dynamodb:{op}"),
                    resource: format!("lease table {}", self.table),
                    message: e,
                })
            } else {
                Ok(())
            }
        };
        let scan = self
            .client
            .scan()
            .table_name(&self.table)
            .limit(1)
            .send()
            .await;
        if let Err(e) = scan {
            outcome(
                "Scan",
                crate::aws::is_denied(&e),
                DisplayErrorContext(&e).to_string(),
            )?;
        }
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key()))
            .condition_expression(never)
            .expression_attribute_names("#k", attr::LEASE_KEY)
            .send()
            .await;
        if let Err(e) = put {
            outcome(
                "PutItem",
                crate::aws::is_denied(&e),
                DisplayErrorContext(&e).to_string(),
            )?;
        }
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key()))
            .update_expression("SET #u = :now")
            .condition_expression(never)
            .expression_attribute_names("#k", attr::LEASE_KEY)
            .expression_attribute_names("#u", attr::UPDATED_AT)
            .expression_attribute_values(":now", A::N("0".into()))
            .send()
            .await;
        if let Err(e) = update {
            outcome(
                "UpdateItem",
                crate::aws::is_denied(&e),
                DisplayErrorContext(&e).to_string(),
            )?;
        }
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key()))
            .condition_expression(never)
            .expression_attribute_names("#k", attr::LEASE_KEY)
            .send()
            .await;
        if let Err(e) = delete {
            outcome(
                "DeleteItem",
                crate::aws::is_denied(&e),
                DisplayErrorContext(&e).to_string(),
            )?;
        }
        Ok(())
    }

    /// Creates the lease table (on-demand billing) if it does not exist, and waits until it is
    /// ACTIVE.
    pub async fn ensure_table(&self) -> Result<(), LeaseError> {
        use crate::dynamo::DynamoError;
        let name = crate::types::TableName::new(self.table.as_str());
        let lease_error = |e: DynamoError| match e {
            DynamoError::AccessDenied { message, .. } => LeaseError::Denied(crate::aws::Denied {
                action: "dynamodb:DescribeTable".into(),
                resource: format!("lease table {}", self.table),
                message,
            }),
            e => LeaseError::Api {
                table: self.table.clone(),
                operation: "DescribeTable",
                retryable: e.is_retryable(),
                message: e.to_string(),
            },
        };
        match crate::dynamo::describe(&self.client, &name).await {
            Ok(d) if d.is_active() => return Ok(()),
            Ok(_) => {}
            Err(DynamoError::NoTable(_)) => {
                tracing::info!(table = %self.table, "creating the lease table (on-demand billing)");
                let created = self
                    .client
                    .create_table()
                    .table_name(&self.table)
                    .billing_mode(BillingMode::PayPerRequest)
                    .attribute_definitions(
                        AttributeDefinition::builder()
                            .attribute_name(attr::LEASE_KEY)
                            .attribute_type(ScalarAttributeType::S)
                            .build()
                            .expect("complete definition"),
                    )
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name(attr::LEASE_KEY)
                            .key_type(KeyType::Hash)
                            .build()
                            .expect("complete key schema"),
                    )
                    .send()
                    .await;
                if let Err(e) = created {
                    // Another worker may have created it at the same moment.
                    if e.code() != Some("ResourceInUseException") {
                        return Err(self.api("CreateTable", e));
                    }
                }
            }
            Err(e) => return Err(lease_error(e)),
        }
        if crate::dynamo::wait_active(&self.client, &name, TABLE_ACTIVE_DEADLINE)
            .await
            .map_err(lease_error)?
        {
            Ok(())
        } else {
            Err(LeaseError::NotActive(self.table.clone()))
        }
    }
}
