//! Values flowing between the nodes of a natively evaluated graph.

/// Elements of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// `float` (ONNX type 1).
    F32(Vec<f32>),
    /// `double` (ONNX type 11).
    F64(Vec<f64>),
    /// `int64` (ONNX type 7); also carries int32 and bool values, widened.
    I64(Vec<i64>),
    /// `string` (ONNX type 8).
    Str(Vec<String>),
}

impl Data {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::Str(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ONNX name of the element type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Data::F32(_) => "float",
            Data::F64(_) => "double",
            Data::I64(_) => "int64",
            Data::Str(_) => "string",
        }
    }
}

/// A tensor of `rows × cols` elements, row-major. Every tensor in the classical ONNX-ML
/// operators is a batch of rows: `[N]` is taken as `[N, 1]` and `[N, C, K]` (OneHotEncoder) as
/// `[N, C·K]`, with `shape` keeping the declared dimensions for operators that care.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// The elements.
    pub data: Data,
    /// Rows (the batch dimension).
    pub rows: usize,
    /// Elements per row.
    pub cols: usize,
}

impl Tensor {
    /// A tensor of `rows × cols` elements.
    pub fn new(data: Data, rows: usize, cols: usize) -> Tensor {
        Tensor { data, rows, cols }
    }

    /// The elements as `f64` (strings are refused by the caller before this is reached; they
    /// read as NaN here).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::F64(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::Str(v) => vec![f64::NAN; v.len()],
        }
    }
}

/// A value bound to a graph name.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A tensor.
    Tensor(Tensor),
    /// ZipMap's sequence of maps, one per row: class label → probability. Kept as the label list
    /// and the `rows × labels` probability matrix it was made from.
    Maps {
        /// The map keys, in column order.
        labels: Vec<String>,
        /// Whether the keys are int64 (else strings).
        int_keys: bool,
        /// The probabilities, `rows × labels.len()`.
        probabilities: Vec<f32>,
        /// Rows.
        rows: usize,
    },
}
