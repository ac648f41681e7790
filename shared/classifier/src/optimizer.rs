//! AdamW with parameter groups, global-norm gradient clipping and a state that can be saved and
//! restored. candle-nn's `AdamW` keeps its moments private, so a resumed run would restart
//! them from zero and diverge from an uninterrupted one; this one checkpoints them.
//! The update is PyTorch's `torch.optim.AdamW` (decoupled weight decay, bias-corrected
//! moments), the same arithmetic as candle-nn's.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// Variables that share a peak learning rate and a weight decay (PyTorch's param groups).
#[derive(Debug)]
pub struct ParamGroup {
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// `(name, variable)`: names key the saved state.
    pub vars: Vec<(String, Var)>,
}

#[derive(Debug)]
struct Slot {
    name: String,
    var: Var,
    first_moment: Tensor,
    second_moment: Tensor,
}

#[derive(Debug)]
struct Group {
    learning_rate: f64,
    weight_decay: f64,
    slots: Vec<Slot>,
}

#[derive(Debug)]
pub struct AdamW {
    groups: Vec<Group>,
    steps: usize,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl AdamW {
    pub fn new(groups: Vec<ParamGroup>) -> candle_core::Result<Self> {
        let groups = groups
            .into_iter()
            .map(|group| {
                let slots = group
                    .vars
                    .into_iter()
                    .map(|(name, var)| {
                        Ok(Slot {
                            first_moment: var.zeros_like()?,
                            second_moment: var.zeros_like()?,
                            name,
                            var,
                        })
                    })
                    .collect::<candle_core::Result<_>>()?;
                Ok(Group {
                    learning_rate: group.learning_rate,
                    weight_decay: group.weight_decay,
                    slots,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { groups, steps: 0 })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The gradients' global L2 norm over every variable this optimizer updates.
    pub fn gradient_norm(&self, gradients: &GradStore) -> candle_core::Result<f64> {
        let mut squares = 0f64;
        for slot in self.slots() {
            if let Some(gradient) = gradients.get(slot.var.as_tensor()) {
                squares += f64::from(gradient.sqr()?.sum_all()?.to_scalar::<f32>()?);
            }
        }
        Ok(squares.sqrt())
    }

    /// One update with each group's peak rate times `schedule`, the gradients first scaled so
    /// that their global norm is at most `max_norm` (PyTorch's `clip_grad_norm_`). Returns the
    /// norm before clipping.
    pub fn step(
        &mut self,
        gradients: &GradStore,
        schedule: f64,
        max_norm: Option<f64>,
    ) -> candle_core::Result<f64> {
        let norm = self.gradient_norm(gradients)?;
        let clip = match max_norm {
            Some(max) if norm > max => max / (norm + 1e-6),
            _ => 1.0,
        };
        self.steps += 1;
        let correction1 = 1.0 - BETA1.powi(self.steps as i32);
        let correction2 = 1.0 - BETA2.powi(self.steps as i32);
        for group in &mut self.groups {
            let rate = group.learning_rate * schedule;
            for slot in &mut group.slots {
                let Some(gradient) = gradients.get(slot.var.as_tensor()) else {
                    continue;
                };
                let gradient = (gradient * clip)?;
                slot.first_moment = ((&slot.first_moment * BETA1)? + (&gradient * (1.0 - BETA1))?)?;
                slot.second_moment =
                    ((&slot.second_moment * BETA2)? + (gradient.sqr()? * (1.0 - BETA2))?)?;
                let corrected_first = (&slot.first_moment / correction1)?;
                let corrected_second = (&slot.second_moment / correction2)?;
                let update = (corrected_first / (corrected_second.sqrt()? + EPSILON)?)?;
                let decayed = (slot.var.as_tensor() * (1.0 - rate * group.weight_decay))?;
                slot.var.set(&(decayed - (update * rate)?)?)?;
            }
        }
        Ok(norm)
    }

    /// The moments, named `adam.m.<var>` and `adam.v.<var>`, to save beside the weights.
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.slots()
            .flat_map(|slot| {
                [
                    (format!("adam.m.{}", slot.name), slot.first_moment.clone()),
                    (format!("adam.v.{}", slot.name), slot.second_moment.clone()),
                ]
            })
            .collect()
    }

    /// Restores what `state` saved, after `steps` steps.
    pub fn restore(
        &mut self,
        state: &HashMap<String, Tensor>,
        steps: usize,
    ) -> candle_core::Result<()> {
        for group in &mut self.groups {
            for slot in &mut group.slots {
                let moment = |kind: &str| {
                    let name = format!("adam.{kind}.{}", slot.name);
                    let tensor = state.get(&name).ok_or_else(|| {
                        candle_core::Error::Msg(format!("the checkpoint has no `{name}`"))
                    })?;
                    if tensor.shape() != slot.var.shape() {
                        candle_core::bail!(
                            "`{name}` has shape {:?}, the variable {:?}",
                            tensor.shape(),
                            slot.var.shape()
                        );
                    }
                    tensor.copy()
                };
                slot.first_moment = moment("m")?;
                slot.second_moment = moment("v")?;
            }
        }
        self.steps = steps;
        Ok(())
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.groups.iter().flat_map(|group| group.slots.iter())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::Optimizer;

    use super::*;

    fn quadratic_loss(var: &Var) -> candle_core::Result<Tensor> {
        let target = Tensor::new(&[1f32, -2.0, 3.0], &Device::Cpu)?;
        (var.as_tensor() - target)?.sqr()?.sum_all()
    }

    #[test]
    fn matches_candle_nn_adamw_step_for_step() {
        let ours_var = Var::new(&[0.5f32, 0.5, 0.5], &Device::Cpu).expect("var");
        let theirs_var = Var::new(&[0.5f32, 0.5, 0.5], &Device::Cpu).expect("var");
        let mut ours = AdamW::new(vec![ParamGroup {
            learning_rate: 0.1,
            weight_decay: 0.01,
            vars: vec![("x".to_owned(), ours_var.clone())],
        }])
        .expect("ours");
        let mut theirs = candle_nn::AdamW::new(
            vec![theirs_var.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.1,
                weight_decay: 0.01,
                ..candle_nn::ParamsAdamW::default()
            },
        )
        .expect("theirs");
        for _ in 0..20 {
            let gradients = quadratic_loss(&ours_var)
                .and_then(|loss| loss.backward())
                .expect("grads");
            ours.step(&gradients, 1.0, None).expect("step");
            let gradients = quadratic_loss(&theirs_var)
                .and_then(|loss| loss.backward())
                .expect("grads");
            theirs.step(&gradients).expect("step");
        }
        let ours = ours_var.to_vec1::<f32>().expect("values");
        let theirs = theirs_var.to_vec1::<f32>().expect("values");
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-6, "{ours:?} vs {theirs:?}");
        }
    }

    #[test]
    fn clipping_bounds_the_first_step_and_reports_the_raw_norm() {
        let var = Var::new(&[0f32, 0.0, 0.0], &Device::Cpu).expect("var");
        let mut optimizer = AdamW::new(vec![ParamGroup {
            learning_rate: 1.0,
            weight_decay: 0.0,
            vars: vec![("x".to_owned(), var.clone())],
        }])
        .expect("optimizer");
        let gradients = quadratic_loss(&var)
            .and_then(|loss| loss.backward())
            .expect("grads");
        // d/dx Σ(x − t)² at 0 is −2t = (−2, 4, −6): norm √56.
        let norm = optimizer.step(&gradients, 1.0, Some(1.0)).expect("step");
        assert!((norm - 56f64.sqrt()).abs() < 1e-5, "{norm}");
        assert_eq!(optimizer.steps(), 1);
    }

    #[test]
    fn restored_state_continues_exactly() {
        let run = |split: Option<usize>| {
            let var = Var::new(&[0.5f32, 0.5, 0.5], &Device::Cpu).expect("var");
            let group = || ParamGroup {
                learning_rate: 0.05,
                weight_decay: 0.1,
                vars: vec![("x".to_owned(), var.clone())],
            };
            let mut optimizer = AdamW::new(vec![group()]).expect("optimizer");
            for step in 0..10 {
                if split == Some(step) {
                    let (state, steps) = (optimizer.state(), optimizer.steps());
                    optimizer = AdamW::new(vec![group()]).expect("fresh");
                    optimizer.restore(&state, steps).expect("restore");
                }
                let gradients = quadratic_loss(&var)
                    .and_then(|loss| loss.backward())
                    .expect("grads");
                optimizer.step(&gradients, 0.5, Some(2.0)).expect("step");
            }
            var.to_vec1::<f32>().expect("values")
        };
        assert_eq!(run(None), run(Some(4)));
        let mut missing = AdamW::new(vec![ParamGroup {
            learning_rate: 0.1,
            weight_decay: 0.0,
            vars: vec![(
                "y".to_owned(),
                Var::new(&[0f32], &Device::Cpu).expect("var"),
            )],
        }])
        .expect("optimizer");
        assert!(missing.restore(&HashMap::new(), 3).is_err());
    }
}
