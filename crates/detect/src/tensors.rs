//! Model files as safetensors: named `f32`/`u32` arrays with shapes, the
//! format candle writes too, so one reader checks every model file.
//! safetensors orders tensors by dtype and name, so the bytes do not depend on
//! insertion order (a byte-identical bundle per seed relies on that).

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::DetectError;

/// Tensors to write.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    items: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
}

impl Writer {
    pub fn f32(&mut self, name: &str, shape: &[usize], data: &[f32]) -> &mut Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.items.push((name.to_string(), Dtype::F32, shape.to_vec(), bytes));
        self
    }

    pub fn u32(&mut self, name: &str, shape: &[usize], data: &[u32]) -> &mut Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.items.push((name.to_string(), Dtype::U32, shape.to_vec(), bytes));
        self
    }

    pub fn finish(&self) -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = self
            .items
            .iter()
            .filter_map(|(n, t, s, b)| TensorView::new(*t, s.clone(), b).ok().map(|v| (n.clone(), v)))
            .collect();
        // Only shape/length mismatches fail, and the asserts above rule them out.
        safetensors::serialize(views, None).unwrap_or_default()
    }
}

/// A parsed model file.
pub(crate) struct Reader<'a> {
    model: &'static str,
    st: SafeTensors<'a>,
}

impl<'a> Reader<'a> {
    pub fn new(model: &'static str, bytes: &'a [u8]) -> Result<Self, DetectError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| DetectError::corrupt(model, e))?;
        Ok(Reader { model, st })
    }

    fn view(&self, name: &str, dtype: Dtype) -> Result<(Vec<usize>, &'a [u8]), DetectError> {
        let t = self.st.tensor(name).map_err(|_| DetectError::corrupt(self.model, format!("no tensor {name:?}")))?;
        if t.dtype() != dtype {
            return Err(DetectError::corrupt(self.model, format!("tensor {name:?} is {:?}, not {dtype:?}", t.dtype())));
        }
        Ok((t.shape().to_vec(), t.data()))
    }

    /// An `f32` tensor whose shape must match `want` (`None` = any size there).
    pub fn f32(&self, name: &str, want: &[Option<usize>]) -> Result<(Vec<usize>, Vec<f32>), DetectError> {
        let (shape, v) = self.f32_or_nan(name, want)?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(DetectError::corrupt(self.model, format!("tensor {name:?} holds a non-finite value")));
        }
        Ok((shape, v))
    }

    /// Like [`Reader::f32`], but any value passes (data rows, where NaN = missing).
    pub fn f32_or_nan(&self, name: &str, want: &[Option<usize>]) -> Result<(Vec<usize>, Vec<f32>), DetectError> {
        let (shape, data) = self.view(name, Dtype::F32)?;
        self.check_shape(name, &shape, want)?;
        Ok((shape, data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }

    pub fn u32(&self, name: &str, want: &[Option<usize>]) -> Result<(Vec<usize>, Vec<u32>), DetectError> {
        let (shape, data) = self.view(name, Dtype::U32)?;
        self.check_shape(name, &shape, want)?;
        Ok((shape, data.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
    }

    /// A one-value `f32` tensor.
    pub fn scalar(&self, name: &str) -> Result<f32, DetectError> {
        Ok(self.f32(name, &[Some(1)])?.1[0])
    }

    fn check_shape(&self, name: &str, shape: &[usize], want: &[Option<usize>]) -> Result<(), DetectError> {
        let ok = shape.len() == want.len() && shape.iter().zip(want).all(|(s, w)| w.is_none_or(|w| w == *s));
        if ok {
            Ok(())
        } else {
            Err(DetectError::corrupt(self.model, format!("tensor {name:?} has shape {shape:?}, expected {want:?}")))
        }
    }
}
