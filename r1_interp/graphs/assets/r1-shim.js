// r1-shim.js: r1-interp's own code (licensed as r1-interp is), not part of circuit-tracer, d3 or jetpack.
// circuit-tracer's front end loads jetpack_2024-07-20.js and npy_v0.js from transformer-circuits.pub; neither is
// on npm. This file gives the page exactly what it calls of them, on d3 v7 and d3-collection (loaded before it).
(function(){
  'use strict'
  var proto = d3.selection.prototype, d3append = proto.append, d3insert = proto.insert

  // 'tag.class1.class2#id' -> {tag, attrs}
  function parseName(name){
    var parts = name.split(/([.#])/g), tag = parts.shift(), attrs = {}, p
    while ((p = parts.shift()) !== undefined){
      var v = parts.shift()
      if (p == '.') attrs['class'] = attrs['class'] ? attrs['class'] + ' ' + v : v
      else attrs.id = v
    }
    return {tag: tag, attrs: attrs}
  }
  function withAttrs(sel, attrs){ for (var k in attrs) sel.attr(k, attrs[k]); return sel }
  function kebab(s){ return s.replace(/([a-z\d])([A-Z])/g, '$1-$2').toLowerCase() }

  proto.append = function(name){
    if (typeof name != 'string') return d3append.call(this, name)
    var n = parseName(name)
    return withAttrs(d3append.call(this, n.tag), n.attrs)
  }
  proto.insert = function(name, before){
    if (typeof name != 'string') return d3insert.call(this, name, before)
    var n = parseName(name)
    return withAttrs(d3insert.call(this, n.tag, before), n.attrs)
  }
  // the child matching `name`, appended when there is none
  proto.selectAppend = function(name){
    var n = parseName(name), find = d3.selector(name), create = d3.creator(n.tag)
    return withAttrs(this.select(function(){
      return find.apply(this, arguments) || this.appendChild(create.apply(this, arguments))
    }), n.attrs)
  }
  proto.appendMany = function(name, data){ return this.selectAll(null).data(data).enter().append(name) }
  proto.parent = function(){
    var seen = []
    return this.filter(function(){ return seen.indexOf(this.parentNode) < 0 && seen.push(this.parentNode) })
      .select(function(){ return this.parentNode })
  }
  // attributes from an object, camelCase keys as kebab-case
  proto.at = function(name, value){
    if (typeof name == 'object'){ for (var k in name) this.attr(kebab(k), name[k]); return this }
    return arguments.length == 1 ? this.attr(name) : this.attr(name, value)
  }
  // styles from an object, camelCase keys as kebab-case, numbers as px for lengths
  var PX = new Set(('top left bottom right width height min-width max-width min-height max-height font-size ' +
    'line-height padding padding-top padding-right padding-bottom padding-left margin margin-top margin-right ' +
    'margin-bottom margin-left border-width border-radius gap').split(' '))
  function px(v){ return typeof v == 'number' ? v + 'px' : v }
  function setStyle(sel, name, value){
    name = kebab(name)
    if (!PX.has(name)) return sel.style(name, value)
    var wrapped = typeof value == 'function' ? function(){ return px(value.apply(this, arguments)) } : px(value)
    return sel.style(name, wrapped)
  }
  proto.st = function(name, value){
    if (typeof name == 'object'){ for (var k in name) setStyle(this, k, name[k]); return this }
    return arguments.length == 1 ? this.style(name) : setStyle(this, name, value)
  }
  // translate(xy) or translate(fn): an SVG transform attribute, or a CSS transform on HTML elements;
  // translate(v, 0) moves along x only, translate(v, 1) along y only
  proto.translate = function(xy, dim){
    var node = this.node()
    if (!node) return this
    var isSvg = typeof node.getBBox == 'function'
    function pos(d, i){
      var p = typeof xy == 'function' ? xy.call(this, d, i) : xy
      if (dim === 0) p = [p, 0]; else if (dim === 1) p = [0, p]
      return isSvg ? 'translate(' + p[0] + ',' + p[1] + ')' : 'translate(' + p[0] + 'px,' + p[1] + 'px)'
    }
    return isSvg ? this.attr('transform', pos) : this.style('transform', pos)
  }

  // groups of `array` by `key` in first-seen order, each an array with a string .key (d3-collection's nest)
  d3.nestBy = function(array, key){
    return d3.nest().key(key).entries(array).map(function(d){ d.values.key = d.key; return d.values })
  }
  d3.clamp = function(lo, v, hi){ return Math.max(lo, Math.min(hi, v)) }

  // a chart's frame inside c.sel: margins, width/height, linear x/y scales and axes, and stacked layers
  // ('s' svg <g>, 'c' canvas 2d context, 'd' div), all translated by the margins
  d3.conventions = function(c){
    c = c || {}
    c.margin = Object.assign({}, c.margin)
    ;['top', 'right', 'bottom', 'left'].forEach(function(k){ if (c.margin[k] == null) c.margin[k] = 20 })
    c.sel = c.sel || d3.select('body')
    var node = c.sel.node()
    c.totalWidth = c.totalWidth || node && node.offsetWidth || 960
    c.totalHeight = c.totalHeight || node && node.offsetHeight || 500
    c.width = c.width || c.totalWidth - c.margin.left - c.margin.right
    c.height = c.height || c.totalHeight - c.margin.top - c.margin.bottom
    c.totalWidth = c.width + c.margin.left + c.margin.right
    c.totalHeight = c.height + c.margin.top + c.margin.bottom
    c.sel.st({position: 'relative', height: c.totalHeight, width: c.totalWidth})
    c.x = c.x || d3.scaleLinear().range([0, c.width])
    c.y = c.y || d3.scaleLinear().range([c.height, 0])
    c.xAxis = c.xAxis || d3.axisBottom(c.x)
    c.yAxis = c.yAxis || d3.axisLeft(c.y)
    var stacked = !!c.layers
    c.layers = (c.layers || 's').split('').map(function(type){
      if (type == 's'){
        var g = c.sel.append('svg').st({position: stacked ? 'absolute' : ''})
          .attr('width', c.totalWidth).attr('height', c.totalHeight)
          .append('g').attr('transform', 'translate(' + c.margin.left + ',' + c.margin.top + ')')
        if (!c.svg) c.svg = g
        return g
      }
      if (type == 'c'){
        var s = window.devicePixelRatio || 1
        var ctx = c.sel.append('canvas').at({width: c.totalWidth * s, height: c.totalHeight * s})
          .st({width: c.totalWidth, height: c.totalHeight, position: 'absolute'}).node().getContext('2d')
        ctx.scale(s, s); ctx.translate(c.margin.left, c.margin.top)
        return ctx
      }
      if (type == 'd') return c.sel.append('div')
        .st({position: 'absolute', left: c.margin.left, top: c.margin.top, width: c.width, height: c.height})
      throw new Error('d3.conventions: unknown layer type ' + type)
    })
    c.drawAxis = function(svg){
      svg = svg || c.svg
      var xAxisSel = svg.append('g').attr('class', 'x axis').attr('transform', 'translate(0,' + c.height + ')')
        .call(c.xAxis)
      var yAxisSel = svg.append('g').attr('class', 'y axis').call(c.yAxis)
      return {xAxisSel: xAxisSel, yAxisSel: yAxisSel}
    }
    return c
  }

  // a tooltip on hover: tooltipSel filled with one div per field function (text, escaped), placed near the mouse
  d3.attachTooltip = function(sel, tooltipSel, fieldFns){
    if (!sel.size()) return
    tooltipSel = tooltipSel || d3.select('.tooltip')
    sel.on('mouseover.attachTooltip', function(ev, d){
        var fns = fieldFns || Object.keys(d).filter(function(k){ return typeof d[k] != 'object' })
          .map(function(k){ return function(d){ return k + ': ' + d[k] } })
        tooltipSel.classed('tooltip-hidden', false).html('')
          .appendMany('div', fns).text(function(fn){ return fn(d) })
        d3.select(this).classed('tooltipped', true)
      })
      .on('mousemove.attachTooltip', function(ev){
        var bb = tooltipSel.node().getBoundingClientRect(), x = ev.clientX, y = ev.clientY
        tooltipSel.style('left', d3.clamp(20, x - bb.width / 2, window.innerWidth - bb.width - 20) + 'px')
          .style('top', (innerHeight > y + 20 + bb.height ? y + 20 : y - bb.height - 20) + 'px')
      })
      .on('mouseout.attachTooltip', function(){
        tooltipSel.classed('tooltip-hidden', true)
        d3.selectAll('.tooltipped').classed('tooltipped', false)
      })
  }

  // NumPy .npy (format 1.0-3.0, little-endian or single-byte dtypes) -> {dtype, shape, fortranOrder, data}
  var NPY = {'<f4': Float32Array, '<f8': Float64Array, '|i1': Int8Array, '|u1': Uint8Array, '|b1': Uint8Array,
    '<i2': Int16Array, '<u2': Uint16Array, '<i4': Int32Array, '<u4': Uint32Array, '<i8': BigInt64Array,
    '<u8': BigUint64Array}
  window.npyjs = {parse: function(buf){
    var bytes = new Uint8Array(buf), view = new DataView(buf)
    if (bytes[0] != 0x93 || String.fromCharCode.apply(null, bytes.subarray(1, 6)) != 'NUMPY')
      throw new Error('npyjs.parse: not a .npy file')
    var major = bytes[6], start = major == 1 ? 10 : 12
    var hlen = major == 1 ? view.getUint16(8, true) : view.getUint32(8, true)
    var header = new TextDecoder(major == 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + hlen))
    var descr = /'descr':\s*'([^']+)'/.exec(header), shape = /'shape':\s*\(([^)]*)\)/.exec(header)
    if (!descr || !shape) throw new Error('npyjs.parse: unreadable header ' + header)
    var T = NPY[descr[1]]
    if (!T) throw new Error('npyjs.parse: dtype ' + descr[1] + ' is not supported')
    shape = shape[1].split(',').map(function(s){ return s.trim() }).filter(Boolean).map(Number)
    var n = shape.reduce(function(a, b){ return a * b }, 1), at = start + hlen
    return {dtype: descr[1], shape: shape, fortranOrder: /'fortran_order':\s*True/.test(header),
            data: new T(buf.slice(at, at + n * T.BYTES_PER_ELEMENT))}
  }}
})()
