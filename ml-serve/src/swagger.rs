//! `GET /swagger.json?version=2|3|3.1`: the API description of `/score`, generated from the
//! model's schema, with a sample input and the model's own answer to it as the sample output —
//! Stream Analytics binds a function from these.
//!
//! The layout follows the Azure ML inference server's: paths `/` (`ServiceHealthCheck`) and
//! `/score` (`RunMLService`, body parameter `serviceInputPayload`), definitions
//! `ServiceInput`, `ServiceOutput`, `ErrorResponse`, security scheme `Bearer` (an API key in
//! the `Authorization` header). Two vendor extensions carry the exact schema and output kind
//! (`x-streamscore-schema`, `x-streamscore-output`), so a streamscore client (the
//! `RemoteScorer`) decodes answers without a copy of the model.

use axum::body::Bytes;
use ml_core::{DataType, Field, Frame, Model, OutputSpec, Schema, Value};
use serde_json::{Value as Json, json};

/// Which document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V2,
    V3,
    V31,
}

impl Version {
    pub(crate) fn parse(s: Option<&str>) -> Option<Version> {
        match s.map(str::trim) {
            None | Some("2") | Some("2.0") => Some(Version::V2),
            Some("3") | Some("3.0") => Some(Version::V3),
            Some("3.1") => Some(Version::V31),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The three documents, serialized once when a model is loaded.
pub(crate) fn documents(name: &str, version: &str, model: &dyn Model) -> [Bytes; 3] {
    let sample_in = sample_row(model.schema());
    let sample_out = sample_output(model, &sample_in);
    [Version::V2, Version::V3, Version::V31].map(|v| {
        let doc = document(
            v,
            name,
            version,
            model.schema(),
            model.output(),
            &sample_in,
            &sample_out,
        );
        Bytes::from(serde_json::to_vec_pretty(&doc).unwrap_or_default())
    })
}

/// An example value per field: the first category, zero, false.
fn sample_row(schema: &Schema) -> Vec<(String, Json, Value)> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let (j, v) = match &f.dtype {
                DataType::Float => (json!(0.0), Value::Float(0.0)),
                DataType::Int => (json!(0), Value::Int(0)),
                DataType::Bool => (json!(false), Value::Bool(false)),
                DataType::Categorical { vocabulary, .. } => {
                    let first = vocabulary.values().first().cloned().unwrap_or_default();
                    (json!(first), Value::Str(first))
                }
                DataType::String => (json!(""), Value::Str(String::new())),
            };
            (f.name.clone(), j, v)
        })
        .collect()
}

/// The model's answer to the sample row, as `/score` would give it.
fn sample_output(model: &dyn Model, row: &[(String, Json, Value)]) -> Json {
    let values: Vec<Value> = row.iter().map(|(_, _, v)| v.clone()).collect();
    let answer = Frame::from_rows(model.schema().clone(), &[values])
        .and_then(|f| model.predict(&f))
        .map(|p| crate::output::azure(&p));
    match answer {
        Ok(a) => a,
        // A model that cannot score the sample still gets a well-formed example.
        Err(_) => match model.output() {
            OutputSpec::Multiclass { labels } => json!([{ "label": labels.first(), "probabilities": {} }]),
            _ => json!([0.0]),
        },
    }
}

fn field_schema(f: &Field, v: Version) -> Json {
    let mut s = match &f.dtype {
        DataType::Float => json!({"type": "number", "format": "double"}),
        DataType::Int => json!({"type": "integer", "format": "int64"}),
        DataType::Bool => json!({"type": "boolean"}),
        DataType::Categorical { vocabulary, unseen } => {
            let mut s = json!({"type": "string"});
            if *unseen == ml_core::UnseenPolicy::Error {
                s["enum"] = json!(vocabulary.values());
            }
            s
        }
        DataType::String => json!({"type": "string"}),
    };
    if f.nullable {
        match v {
            Version::V2 => s["x-nullable"] = json!(true),
            Version::V3 => s["nullable"] = json!(true),
            Version::V31 => {
                let t = s["type"].clone();
                s["type"] = json!([t, "null"]);
                if let Some(Json::Array(e)) = s.get_mut("enum") {
                    e.push(Json::Null);
                }
            }
        }
    }
    s
}

fn output_schema(output: &OutputSpec) -> Json {
    let items = match output {
        OutputSpec::Regression | OutputSpec::Binary { .. } => json!({"type": "number", "format": "double"}),
        OutputSpec::Multiclass { labels } => json!({
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": labels},
                "probabilities": {
                    "type": "object",
                    "properties": labels.iter().map(|l| (l.clone(), json!({"type": "number", "format": "double"}))).collect::<serde_json::Map<_, _>>(),
                },
            },
        }),
    };
    json!({"type": "array", "items": items})
}

fn document(
    v: Version,
    name: &str,
    version: &str,
    schema: &Schema,
    output: &OutputSpec,
    sample_in: &[(String, Json, Value)],
    sample_out: &Json,
) -> Json {
    let properties: serde_json::Map<String, Json> = schema
        .fields()
        .iter()
        .map(|f| (f.name.clone(), field_schema(f, v)))
        .collect();
    let required: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| !f.nullable)
        .map(|f| f.name.as_str())
        .collect();
    let example_row: serde_json::Map<String, Json> =
        sample_in.iter().map(|(n, j, _)| (n.clone(), j.clone())).collect();
    let service_input = json!({
        "type": "object",
        "properties": {
            "data": {
                "type": "array",
                "items": {"type": "object", "required": required, "properties": properties},
            },
        },
        "example": {"data": [example_row]},
    });
    let mut service_output = output_schema(output);
    service_output["example"] = sample_out.clone();
    let error_response = json!({"type": "object", "properties": {"message": {"type": "string"}}});
    let info = json!({
        "title": format!("{name}:{version}"),
        "description": format!("API specification for the streamscore scoring endpoint of model {name}, version {version} (Azure ML inference server contract)"),
        "version": version,
    });
    let bearer_description = "For example: Bearer abc123";
    let health_text =
        "If service is up and running, this response will be returned with the content 'Healthy'";
    let score_text =
        "The service processed the input correctly and provided a result prediction, if applicable.";
    let error_text = "The service failed to execute due to an error.";
    let input_text = "The input payload for executing the real-time machine learning service.";
    let mut doc = match v {
        Version::V2 => json!({
            "swagger": "2.0",
            "info": info,
            "schemes": ["http", "https"],
            "consumes": ["application/json"],
            "produces": ["application/json"],
            "securityDefinitions": {
                "Bearer": {"type": "apiKey", "name": "Authorization", "in": "header", "description": bearer_description},
            },
            "paths": {
                "/": {"get": {
                    "operationId": "ServiceHealthCheck",
                    "description": "Simple health check endpoint to ensure the service is up at any given point.",
                    "responses": {
                        "200": {"description": health_text, "schema": {"type": "string"}, "examples": {"application/json": "Healthy"}},
                        "default": {"description": error_text, "schema": {"$ref": "#/definitions/ErrorResponse"}},
                    },
                }},
                "/score": {"post": {
                    "operationId": "RunMLService",
                    "description": "Run web service's model and get the prediction output",
                    "security": [{"Bearer": []}],
                    "parameters": [{
                        "name": "serviceInputPayload", "in": "body", "description": input_text,
                        "schema": {"$ref": "#/definitions/ServiceInput"},
                    }],
                    "responses": {
                        "200": {"description": score_text, "schema": {"$ref": "#/definitions/ServiceOutput"}},
                        "default": {"description": error_text, "schema": {"$ref": "#/definitions/ErrorResponse"}},
                    },
                }},
            },
            "definitions": {
                "ServiceInput": service_input,
                "ServiceOutput": service_output,
                "ErrorResponse": error_response,
            },
        }),
        Version::V3 | Version::V31 => json!({
            "openapi": if v == Version::V3 { "3.0.1" } else { "3.1.0" },
            "info": info,
            "paths": {
                "/": {"get": {
                    "operationId": "ServiceHealthCheck",
                    "description": "Simple health check endpoint to ensure the service is up at any given point.",
                    "responses": {
                        "200": {"description": health_text, "content": {"text/plain": {"schema": {"type": "string"}, "example": "Healthy"}}},
                        "default": {"description": error_text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}},
                    },
                }},
                "/score": {"post": {
                    "operationId": "RunMLService",
                    "description": "Run web service's model and get the prediction output",
                    "security": [{"Bearer": []}],
                    "requestBody": {
                        "description": input_text,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceInput"}}},
                    },
                    "responses": {
                        "200": {"description": score_text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ServiceOutput"}}}},
                        "default": {"description": error_text, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}},
                    },
                }},
            },
            "components": {
                "securitySchemes": {
                    "Bearer": {"type": "apiKey", "name": "Authorization", "in": "header", "description": bearer_description},
                },
                "schemas": {
                    "ServiceInput": service_input,
                    "ServiceOutput": service_output,
                    "ErrorResponse": error_response,
                },
            },
        }),
    };
    doc["x-streamscore-schema"] = serde_json::from_str(&schema.to_json()).unwrap_or(Json::Null);
    doc["x-streamscore-output"] = serde_json::to_value(output).unwrap_or(Json::Null);
    doc
}
